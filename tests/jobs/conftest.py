"""Fixtures shared by the job tests that talk to Stripe through the fake server."""

import pytest
from pydantic import SecretStr

from jobs.deps import Deps
from tests.fakes.stripe_server import API_KEY, FakeStripe, StripeServer


@pytest.fixture(scope="module")
def stripe_server():
    server = StripeServer()
    with server:
        yield server


@pytest.fixture
def stripe(stripe_server: StripeServer) -> FakeStripe:
    stripe_server.fake.reset()
    return stripe_server.fake


@pytest.fixture
def paid_deps(deps: Deps, stripe_server: StripeServer) -> Deps:
    return deps.with_settings(stripe_api_key=SecretStr(API_KEY), stripe_api_base=stripe_server.base_url)
