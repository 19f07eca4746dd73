"""genserve's load tests: Locust users per endpoint family, load profiles, SLOs.

``python -m loadtests --profile smoke`` (see loadtests/README.md). Importing this package
does not import locust (which patches the process with gevent); ``locustfile.py`` does.
"""
