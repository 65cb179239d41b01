"""The settings value the edges pass into the domain."""
from zoneinfo import ZoneInfo

from membership.core.settings import Settings, current_settings


def test_settings_come_from_any_mapping_without_an_app():
    s = Settings.from_config({"TIMEZONE": "Europe/London", "CURRENCY": "GBP", "BASE_URL": "https://x.org/",
                              "REMINDER_BATCH_SIZE": 7})
    assert s.timezone == ZoneInfo("Europe/London")
    assert s.currency == "GBP"
    assert s.base_url == "https://x.org"
    assert s.get("REMINDER_BATCH_SIZE") == 7
    assert s.get("MISSING", 3) == 3


def test_current_settings_follow_the_app_config(app):
    app.config["ASSOCIATION_NAME"] = "Dhaka Engineers"
    assert current_settings().association_name == "Dhaka Engineers"
    app.config["ASSOCIATION_NAME"] = "Chittagong Doctors"
    assert current_settings().association_name == "Chittagong Doctors"
