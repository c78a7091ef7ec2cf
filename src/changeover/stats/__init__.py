"""The Bayesian core: count tables -> posterior -> decision -> what to label next.

Pure numerics on arrays: nothing here imports the store, providers, HTTP or
files; everything arrives as arrays plus names.
"""
