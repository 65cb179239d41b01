"""Help requests: a member's question or complaint, the conversation with staff, and the
customer-service figures staff track (first-response time, time to resolution, first-reply
resolution, open requests by age)."""
