"""Engagement tracking, engagement score, explainable churn risk, alerts and segments (issue 6)."""
