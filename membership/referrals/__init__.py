"""Member-get-member referrals: a personal code and link per member, the referrer recorded at join
(Member.referred_by_id, the same column the CSV import's "referred_by" fills), and an optional
reward rule applied once per referral."""
