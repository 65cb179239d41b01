"""What Samiti holds about a member, and the member's control over it: the member directory's
sharing choices, the data export ("download my data") and account closure with erasure."""
