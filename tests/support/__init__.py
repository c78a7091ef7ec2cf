"""Test helpers shared by the test folders: fake upstream servers and local LLM servers."""
