"""Airflow plugin: "Topic trends" in the UI's navigation, one click to the dashboard.

The view (include/dashboard_view.py) is mounted on the API server; the UI shows it in a frame.
"""
from airflow.plugins_manager import AirflowPlugin

from include import dashboard_view


class SocialTonePlugin(AirflowPlugin):
    name = "social_tone"
    fastapi_apps = [{"app": dashboard_view.app(), "url_prefix": dashboard_view.URL_PREFIX,
                     "name": "social-tone topic trends"}]
    external_views = [{"name": "Topic trends", "href": dashboard_view.URL_PREFIX.lstrip("/") + "/",
                       "url_route": "topic-trends", "destination": "nav", "nav_top_level": True}]
