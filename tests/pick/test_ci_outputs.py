"""CI surfaces: JUnit XML valid against the schema CI reporters use, one case per candidate x dimension x segment."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from changeover.assess import assess
from changeover.config import spec_from_dict
from changeover.report.junit import decision_junit
from tests.pick.test_pick import SPEC, _records

SCHEMA = xmlschema.XMLSchema(Path(__file__).parents[1] / "support" / "junit-10.xsd")


@pytest.fixture(scope="module")
def decision():
    spec = spec_from_dict({**SPEC, "segment_by": ["region"]})
    records = _records()
    for r in records:
        r.segment = {"region": "emea" if int(r.item[1:]) % 2 else "apac"}
    return assess(spec, records).decision


def test_junit_is_valid_and_says_what_passed_failed_and_is_undecided(decision, tmp_path):
    xml = decision_junit(decision)
    (tmp_path / "junit.xml").write_text(xml)
    SCHEMA.validate(str(tmp_path / "junit.xml"))
    root = ET.fromstring(xml)
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"changeover.dear", "changeover.cheap", "changeover.broken"}
    for s in suites.values():  # overall + 2 regions for the one dimension
        assert s.get("tests") == "3" and len(s.findall("testcase")) == 3
    broken = suites["changeover.broken"]
    assert broken.get("failures") == "3" and broken.find("testcase/failure").get("type") == "regression"
    dear = suites["changeover.dear"]
    assert dear.get("failures") == "0" and dear.get("skipped") == "0" and dear.get("errors") == "0"
    assert suites["changeover.cheap"].find("testcase/skipped") is not None
    assert root.get("tests") == "9" and root.get("failures") == "3"


def test_an_invalid_document_is_caught_by_the_schema(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text('<testsuites><testsuite name="x"><testcase/></testsuite></testsuites>')  # no tests=, no name=
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        SCHEMA.validate(str(bad))
