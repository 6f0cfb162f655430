"""One root URL serves every Google API: each lives under its discovery document's servicePath."""

import pytest

from jobs.google_api import api_endpoint, discovery_document


@pytest.mark.parametrize("root", ["http://127.0.0.1:8080", "http://127.0.0.1:8080/"])
def test_calendar_and_drive_live_under_one_root(root):
    assert api_endpoint(root, discovery_document("calendar", "v3")) == "http://127.0.0.1:8080/calendar/v3/"
    assert api_endpoint(root, discovery_document("drive", "v3")) == "http://127.0.0.1:8080/drive/v3/"


def test_a_proxy_prefix_in_the_root_is_kept():
    root = "https://proxy.example/google/"
    assert api_endpoint(root, discovery_document("drive", "v3")) == "https://proxy.example/google/drive/v3/"


def test_the_default_root_is_googles_own():
    for api in ("calendar", "drive"):
        document = discovery_document(api, "v3")
        assert api_endpoint(document["rootUrl"], document) == document["baseUrl"]
