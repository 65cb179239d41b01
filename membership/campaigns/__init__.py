"""Email campaigns (issue 11): staff compose an email per language, choose its recipients by saved
segment or member-list filter, preview and test it, then send it now or at a set time through the
outbox (exactly once per member), and read its report (queued, sent, failed, bounced, opened,
clicked per link, unsubscribed), each figure opening the members behind it."""
