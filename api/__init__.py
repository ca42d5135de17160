"""The thin REST gateway: validate, start or read workflows, shape responses."""
