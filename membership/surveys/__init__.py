"""Member surveys: staff build them (NPS, ratings, effort, choices, free text), send invitations with a
signed link, attach them to events and closed help requests; members answer in the portal or through
the link; results with NPS, distributions, CSV export and a follow-up for each detractor."""
