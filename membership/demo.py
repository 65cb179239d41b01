"""Demo data: a realistic association, built by the domain functions themselves.

Nothing here writes rows behind the domain's back: members are created with create_member,
terms with join/renew, payments (and their receipt numbers) with record_payment, and so on.
The loader walks time forward over the last three years, calling each function with the past
`today`/`now` it would have had, and runs the status sweep on the way (weekly), so the history,
the activities, the audit trail and the gap-free receipt numbers per year are what the app
would have produced. Then it runs the sweep for the real today.

Who the members are is decided up front, per member, by a "persona" (renews on time, lapses,
comes back after a gap, cancels, waits for approval...); the first members get one persona of
each kind so that every status is present even in a small demo.

History sends no email: every call passes notify=False (those emails would have gone out at the
time; queueing three years of welcomes and receipts now would be wrong).

Also here: the demo logins that `flask serve` prints (kept in the instance folder).
"""
from __future__ import annotations

import heapq
import itertools
import os
import random
import secrets
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

import phonenumbers
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash

from membership.accounts import services as accounts
from membership.accounts.models import User
from membership.core.models import Counter
from membership.core.time import add_months, local_midnight_utc
from membership.members import services as members
from membership.members.models import Member, Organization
from membership.plans import services as plans
from membership.plans.models import Membership, Plan

# A Counter row marks a database whose data came from the demo loader (value: the seed), so
# `serve` only creates demo logins where demo data lives, never in a real association's data.
DEMO_MARKER = "demo:seed"
LOGINS_FILE = "demo-logins.txt"
YEARS = 3
SWEEP_EVERY_DAYS = 7

# ---------------------------------------------------------------- names (Bengali script, Latin script)

MUSLIM_MALE = [("রহিম", "Rahim"), ("করিম", "Karim"), ("তানভীর", "Tanvir"), ("রফিক", "Rafiq"),
               ("কামাল", "Kamal"), ("জামাল", "Jamal"), ("হাসান", "Hasan"), ("মাহমুদ", "Mahmud"),
               ("আরিফ", "Arif"), ("সাজিদ", "Sajid"), ("ইমরান", "Imran"), ("শাকিল", "Shakil"),
               ("সোহেল", "Sohel"), ("নজরুল", "Nazrul"), ("আনোয়ার", "Anwar"), ("মিজানুর", "Mizanur"),
               ("হাবিব", "Habib"), ("ফয়সাল", "Faisal"), ("রাশেদ", "Rashed"), ("সুমন", "Sumon"),
               ("রাজীব", "Rajib"), ("আশরাফ", "Ashraf"), ("মাসুদ", "Masud"), ("নাঈম", "Nayeem"),
               ("তারেক", "Tareq"), ("জাহিদ", "Zahid"), ("মোস্তফা", "Mostafa"), ("সাকিব", "Sakib")]
MUSLIM_FEMALE = [("ফাতেমা", "Fatema"), ("আয়েশা", "Ayesha"), ("নাসরিন", "Nasrin"), ("শিরিন", "Shirin"),
                 ("রোকেয়া", "Rokeya"), ("তাসলিমা", "Taslima"), ("ফারহানা", "Farhana"), ("শারমিন", "Sharmin"),
                 ("নুসরাত", "Nusrat"), ("সাদিয়া", "Sadia"), ("তাহমিনা", "Tahmina"), ("রুমানা", "Rumana"),
                 ("জেসমিন", "Jesmin"), ("সাবিনা", "Sabina"), ("লাইলা", "Laila"), ("মিতু", "Mitu"),
                 ("আনিকা", "Anika"), ("তানিয়া", "Tania"), ("সুমাইয়া", "Sumaiya"), ("আফরোজা", "Afroza"),
                 ("দিলরুবা", "Dilruba"), ("কোহিনূর", "Kohinoor")]
MUSLIM_LAST = [("উদ্দিন", "Uddin"), ("আহমেদ", "Ahmed"), ("হোসেন", "Hossain"), ("রহমান", "Rahman"),
               ("ইসলাম", "Islam"), ("চৌধুরী", "Chowdhury"), ("সরকার", "Sarkar"), ("মিয়া", "Mia"),
               ("তালুকদার", "Talukder"), ("খান", "Khan"), ("শেখ", "Sheikh"), ("হক", "Haque"),
               ("আলম", "Alam"), ("ভূঁইয়া", "Bhuiyan"), ("সিদ্দিকী", "Siddique"), ("কবির", "Kabir"),
               ("মোল্লা", "Molla")]
MUSLIM_LAST_FEMALE = [("খাতুন", "Khatun"), ("আক্তার", "Akter"), ("বেগম", "Begum"), ("সুলতানা", "Sultana")]
HINDU_MALE = [("পার্থ", "Partha"), ("দীপঙ্কর", "Dipankar"), ("সুব্রত", "Subrata"), ("অমিত", "Amit"),
              ("প্রদীপ", "Pradip"), ("সঞ্জয়", "Sanjay"), ("বিপ্লব", "Biplob"), ("তাপস", "Tapas")]
HINDU_FEMALE = [("প্রিয়া", "Priya"), ("মৌসুমী", "Moushumi"), ("শম্পা", "Shampa"), ("রুপা", "Rupa"),
                ("অর্পিতা", "Arpita"), ("দীপা", "Dipa"), ("সুমিতা", "Sumita"), ("অনন্যা", "Ananya")]
HINDU_LAST = [("দাস", "Das"), ("রায়", "Roy"), ("সাহা", "Saha"), ("পাল", "Paul"), ("দে", "Dey"),
              ("ঘোষ", "Ghosh"), ("বিশ্বাস", "Biswas"), ("মণ্ডল", "Mondal"), ("চক্রবর্তী", "Chakraborty"),
              ("সেন", "Sen"), ("দত্ত", "Dutta")]
INTERNATIONAL = [("Sarah", "Thompson"), ("James", "Wilson"), ("Emily", "Clarke"), ("David", "Miller"),
                 ("Olivia", "Brown"), ("Thomas", "Wright"), ("Hannah", "Green"), ("Michael", "O'Brien"),
                 ("Zoë", "Müller"), ("Chloé", "Dubois"), ("José", "García"), ("Anna", "Kowalska"),
                 ("Yuki", "Tanaka"), ("Priyanka", "Sharma"), ("Ahmed", "Al-Farsi"), ("Grace", "Mensah")]

ADDRESSES = [("Dhanmondi", "Dhaka", "1209"), ("Gulshan", "Dhaka", "1212"), ("Banani", "Dhaka", "1213"),
             ("Mirpur", "Dhaka", "1216"), ("Uttara", "Dhaka", "1230"), ("Mohammadpur", "Dhaka", "1207"),
             ("Agrabad", "Chattogram", "4100"), ("Nasirabad", "Chattogram", "4000"),
             ("Zindabazar", "Sylhet", "3100"), ("Shaheb Bazar", "Rajshahi", "6100"),
             ("Sonadanga", "Khulna", "9100"), ("Band Road", "Barishal", "8200")]
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")

ORGANISATIONS = [
    ("Dhaka Textiles Ltd", "dhakatextiles", "Tejgaon Industrial Area, Dhaka 1208"),
    ("Chattogram Shipping Agencies", "ctgshipping", "Agrabad C/A, Chattogram 4100"),
    ("সোনার বাংলা প্রকাশনী", "sonarbangla", "Banglabazar, Dhaka 1100"),
    ("Sylhet Tea Growers Cooperative", "sylhettea", "Airport Road, Sylhet 3100"),
    ("Bengal Software Solutions", "bengalsoft", "Kawran Bazar, Dhaka 1215"),
    ("Rajshahi Silk House", "rajshahisilk", "Sopura, Rajshahi 6203"),
    ("Khulna Jute Traders", "khulnajute", "Khalishpur, Khulna 9000"),
    ("Padma Health Clinic", "padmahealth", "Mirpur 10, Dhaka 1216"),
]
JOB_TITLES = ["Managing Director", "HR Manager", "Head of Finance", "Operations Manager",
              "Company Secretary", "Director of Communications", "Administrative Officer"]

STAFF = [("admin", "admin@example.com", "Farhana Rahman"), ("staff", "staff@example.com", "Nasrin Akter"),
         ("staff", "tanvir.hossain@example.com", "Tanvir Hossain")]

CANCEL_REASONS = ["Moving abroad for work", "Joined a sister association in Chattogram",
                  "Cannot afford the fee this year", "Asked to cancel by email: no longer has time",
                  "Duplicate record: member re-registered under a new email",
                  "Health reasons; may rejoin later"]

# (channel, summary, outcome)
GENERAL_NOTES = [
    ("call", "Welcome call: explained the member benefits and the newsletter.", "Happy with the welcome pack"),
    ("meeting", "Met at the office to talk about joining the Education Committee.",
     "Will attend the next committee meeting"),
    ("committee", "Attended the Finance Committee meeting and reviewed the quarterly accounts.",
     "Will prepare the audit checklist"),
    ("committee", "Presented the youth outreach plan to the Executive Committee.", "Plan approved"),
    ("committee", "Took the minutes at the Events Committee meeting.", None),
    ("volunteering", "Volunteered at the Pohela Boishakh fair stall for four hours.",
     "Keen to help again next year"),
    ("volunteering", "Helped with registration at the annual general meeting.", None),
    ("event", "Came to the Dhaka networking evening; asked about the mentoring scheme.",
     "Sent the mentoring brochure"),
    ("email", "Asked for a copy of last year's receipt for a tax return.", "Receipt re-sent"),
    ("visit", "Dropped by the office to update their postal address.", "Address updated"),
    ("other", "Complained that the printed newsletter arrives late in Sylhet.",
     "Passed to the communications team"),
    ("call", "সদস্যপদের সুবিধা নিয়ে প্রশ্ন করেছিলেন; বিস্তারিত জানানো হয়েছে।", "সন্তুষ্ট"),
    ("meeting", "বার্ষিক সাধারণ সভার প্রস্তুতি নিয়ে আলোচনা।", "স্বেচ্ছাসেবক হতে রাজি"),
]
RENEWAL_CALLS = [
    ("call", "Phoned about the renewal that was due on {end}.", "Will pay at the office next week"),
    ("call", "Phoned about the overdue renewal; no answer, left a voicemail.", "Try again in a week"),
    ("email", "Sent a personal reminder about the renewal due on {end}.", "Asked for a bKash number"),
    ("call", "ফোনে নবায়নের কথা মনে করিয়ে দেওয়া হয়েছে ({end})।", "পরের সপ্তাহে টাকা দেবেন"),
]


# ---------------------------------------------------------------- small helpers


def _ascii(text: str) -> str:
    """A Latin name as email-safe ASCII: Zoë -> zoe, O'Brien -> obrien."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in text.lower() if ch.isalnum())


def demo_phone(rng: random.Random, region: str) -> str:
    """A valid mobile number of `region` (Bangladesh: +8801[3-9]XXXXXXXX), as staff would type it."""
    if region.upper() == "BD":
        local = f"01{rng.choice('3456789')}{rng.randrange(10 ** 8):08d}"
        return rng.choice([local, f"+88{local}", f"{local[:5]}-{local[5:]}"])
    example = (phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
               or phonenumbers.example_number(region))
    if example is None:
        raise ValueError(f"no example phone number for region {region!r}")
    national = str(example.national_number)
    keep = max(2, len(national) - 6)
    for _ in range(50):
        digits = national[:keep] + "".join(rng.choice("0123456789") for _ in range(len(national) - keep))
        number = phonenumbers.PhoneNumber(country_code=example.country_code, national_number=int(digits))
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)


def _fee(bdt: int, currency: str) -> int:
    """Demo fees are set in taka; other currencies get a plausible equivalent, in minor units."""
    if currency == "BDT":
        return bdt * 100
    return max(1, round(bdt / 100)) * 100


def database_is_empty(session: Session) -> bool:
    """No members and no plans: the only kind of database the demo loader writes to."""
    return (session.scalar(select(func.count()).select_from(Member)) == 0
            and session.scalar(select(func.count()).select_from(Plan)) == 0)


def has_demo_data(session: Session) -> bool:
    return session.get(Counter, DEMO_MARKER) is not None


# ---------------------------------------------------------------- the simulation


@dataclass
class Person:
    """One demo member to be: who they are and how they behave."""
    persona: str
    plan: Plan
    join_day: date
    renewals_left: int | None = None   # persona "lapsed": on-time renewals before stopping
    switch_plan: Plan | None = None    # move to this plan at the renewal number `switch_at`
    switch_at: int = 0
    paid_later: bool = False           # joins without paying; pays some days later
    approved_later: bool = False       # a student application checked by staff some days later
    member: Member | None = None
    renewals: int = 0
    gapped: bool = False


@dataclass
class DemoResult:
    members: int = 0
    organizations: int = 0
    terms: int = 0
    payments: int = 0
    interactions: int = 0
    events: int = 0
    registrations: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


class _Demo:
    def __init__(self, session: Session, *, n_members: int, seed: int, today: date, end_at: datetime,
                 zone: str, region: str, currency: str, progress: Callable[[int], None] | None):
        self.s = session
        self.n = n_members
        self.rng = random.Random(seed)
        self.seed = seed
        self.today = today
        self.end_at = end_at
        self.zone = ZoneInfo(zone)
        self.region = region
        self.currency = currency
        self.progress = progress
        self.horizon = add_months(today, -12 * YEARS)
        self.start = self.horizon - timedelta(days=30)
        self.heap: list = []
        self.seq = itertools.count()
        self.sim_day = self.start
        self.emails: set[str] = set()
        self.members: list[Member] = []
        self.result = DemoResult()
        opening = local_midnight_utc(today, self.zone) + timedelta(hours=9)
        self.before_opening = end_at < opening
        self.clock = local_midnight_utc(self.start, self.zone)  # the moment of the action running now

    # ------------------------------------------------------------ time

    def moment(self, day: date, *, hour: int | None = None, minute: int | None = None) -> datetime:
        """A moment during office hours of `day` (local), never after the end of the demo."""
        midnight = local_midnight_utc(day, self.zone)
        if hour is None:
            hour, minute = self.rng.randint(9, 16), self.rng.randint(0, 59)
        at = midnight + timedelta(hours=hour, minutes=minute or 0)
        if at > self.end_at:
            at = midnight + (self.end_at - midnight) * self.rng.uniform(0.5, 0.99)
        return at

    def at(self, day: date, action: Callable[[date, datetime], None], *, hour: int | None = None,
           minute: int | None = None) -> None:
        """Schedule `action(today, now)` on `day` (ignored when the day is after today)."""
        if day > self.today:
            return
        day = max(day, self.sim_day)
        if day == self.today and self.before_opening:
            day = max(self.today - timedelta(days=1), self.sim_day)  # the office has not opened yet today
        at = self.moment(day, hour=hour, minute=minute)
        if at <= self.clock:  # something that follows from what just happened comes after it
            at = min(self.clock + timedelta(minutes=self.rng.randint(1, 20)), max(self.end_at, self.clock))
        heapq.heappush(self.heap, (at, next(self.seq), day, action))

    def run(self) -> None:
        sweep = self.start + timedelta(days=SWEEP_EVERY_DAYS)
        while sweep <= self.today:
            self.at(sweep, self.sweep, hour=0, minute=5)
            sweep += timedelta(days=SWEEP_EVERY_DAYS)
        while self.heap:
            now, _, day, action = heapq.heappop(self.heap)
            if self.progress and day > self.sim_day:
                self.progress((day - self.sim_day).days)
            self.sim_day, self.clock = day, now
            action(day, now)
        if self.progress and self.today > self.sim_day:
            self.progress((self.today - self.sim_day).days)
        self.sim_day = self.today

    def sweep(self, today: date, now: datetime) -> None:
        plans.apply_status_transitions(self.s, today=today, now=now, notify=False)

    def staff(self) -> User:
        return self.rng.choices(self.staff_users, weights=[1, 4, 3])[0]

    # ------------------------------------------------------------ set-up

    def make_staff(self) -> None:
        now = self.moment(self.start, hour=9)
        self.staff_users = []
        for role, email, name in STAFF:
            user = accounts.get_user_by_email(self.s, email)
            if user is None:
                # No password: `serve` gives the demo logins theirs (kept in the instance folder).
                user = accounts.create_user(self.s, email=email, name=name, role=role, password=None,
                                            actor=None, now=now)
            self.staff_users.append(user)

    def make_plans(self) -> None:
        now = self.moment(self.start, hour=10)
        c = self.currency
        common = {"currency": c, "created_at": now}
        self.ind = Plan(code="IND", name="Individual (annual)", sort_order=1, fee_minor=_fee(2000, c),
                        period_kind="rolling", period_months=12, grace_days=30, renewal_opens_days=60,
                        description="Full membership for one person, 12 months from the day it starts.",
                        **common)
        self.stu = Plan(code="STU", name="Student (12 months)", sort_order=2, fee_minor=_fee(500, c),
                        period_kind="rolling", period_months=12, grace_days=30, needs_approval=True,
                        description="For full-time students; staff check the student ID before approving.",
                        **common)
        self.cal = Plan(code="CAL", name="Calendar year", sort_order=3, fee_minor=_fee(1800, c),
                        period_kind="fixed", period_months=12, period_start_month=1, period_start_day=1,
                        rollover_month=10, rollover_day=1, grace_days=45,
                        description="January to December; joining from 1 October also covers next year.",
                        **common)
        self.life = Plan(code="LIFE", name="Lifetime", sort_order=4, fee_minor=_fee(25000, c),
                         period_kind="lifetime", period_months=12, grace_days=0, joinable_online=False,
                         description="One payment, member for life.", **common)
        self.corp = Plan(code="CORP", name="Corporate (up to 5 contacts)", sort_order=5,
                         fee_minor=_fee(50000, c), period_kind="rolling", period_months=12, grace_days=60,
                         is_organizational=True, max_contacts=5, joinable_online=False,
                         description="For companies and institutions: covers up to five named contacts.",
                         **common)
        for plan in (self.ind, self.stu, self.cal, self.life, self.corp):
            self.s.add(plan)
        self.s.flush()

    # ------------------------------------------------------------ people

    def identity(self, *, student: bool = False) -> dict:
        rng = self.rng
        roll = rng.random()
        female = rng.random() < 0.5
        md = False
        if roll < 0.12:
            first, last = rng.choice(INTERNATIONAL)
            first_en, last_en, script = first, last, "en"
        else:
            hindu = rng.random() < 0.15
            if hindu:
                first = rng.choice(HINDU_FEMALE if female else HINDU_MALE)
                last = rng.choice(HINDU_LAST)
            else:
                first = rng.choice(MUSLIM_FEMALE if female else MUSLIM_MALE)
                last = rng.choice([n for n in MUSLIM_LAST if n[1] not in ("Uddin", "Mia", "Molla")]
                                  + MUSLIM_LAST_FEMALE * 2 if female else MUSLIM_LAST)
            script = "bn" if rng.random() < 0.38 else "en"  # about a third of all members
            first_en, last_en = first[1], last[1]
            md = not female and not hindu and script == "en" and rng.random() < 0.15
            first, last = (first[0], last[0]) if script == "bn" else (first[1], last[1])
        data = {"first_name": f"Md. {first}" if md else first, "last_name": last,
                "language": "bn" if script == "bn" and rng.random() < 0.8 else "en",
                "marketing_opt_in": rng.random() < 0.6, "directory_opt_in": rng.random() < 0.4}
        if rng.random() < 0.95 or script != "bn":
            base = f"{_ascii(first_en)}.{_ascii(last_en)}"
            email = f"{base}@{rng.choice(EMAIL_DOMAINS)}"
            n = 1
            while email in self.emails:
                n += 1
                email = f"{base}{n}@{rng.choice(EMAIL_DOMAINS)}"
            self.emails.add(email)
            data["email"] = email
        if rng.random() < 0.9:
            data["phone"] = demo_phone(rng, self.region)
        if rng.random() < 0.8:
            area, city, postcode = rng.choice(ADDRESSES)
            data.update(address_line1=f"House {rng.randint(1, 120)}, Road {rng.randint(1, 32)}",
                        address_line2=area, city=city, postcode=postcode, country="BD")
        if rng.random() < 0.7:
            age = rng.randint(18, 25) if student else rng.randint(24, 72)
            data["date_of_birth"] = self.today - timedelta(days=age * 365 + rng.randint(0, 364))
        return data

    def create_member(self, today: date, now: datetime, *, student: bool = False, **extra) -> Member:
        data = {**self.identity(student=student), "joined_on": today, **extra}
        valid = members.validate_member(data, region=self.region, today=today)
        member = members.create_member(self.s, valid, actor=self.staff(), now=now)
        if self.members and self.rng.random() < 0.08:
            # Referrals are not part of the member form yet; set the column like an import would.
            member.referred_by_id = self.rng.choice(self.members).id
        self.members.append(member)
        self.result.members += 1
        return member

    def payment(self, plan: Plan, now: datetime) -> plans.PaymentInput:
        rng = self.rng
        method = rng.choices(["cash", "bank_transfer", "online", "card", "cheque"], [30, 25, 25, 10, 10])[0]
        reference = {
            "cash": None,
            "bank_transfer": f"BEFTN {rng.randrange(10 ** 9):09d}",
            "online": "bKash TrxID " + "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(10)),
            "card": f"POS {rng.randrange(10 ** 6):06d}",
            "cheque": f"Cheque {rng.randrange(10 ** 6):06d}",
        }[method]
        self.result.payments += 1
        return plans.PaymentInput(amount_minor=plan.fee_minor, method=method, received_at=now,
                                  reference=reference)

    # ------------------------------------------------------------ planning

    def chain_end(self, plan: Plan, join_day: date, terms: int) -> date | None:
        """End of the last of `terms` back-to-back terms from `join_day` (renewed on time)."""
        start, end = plans.term_dates(plan, join_day)
        for _ in range(terms - 1):
            if end is None:
                return None
            start, end = plans.term_dates(plan, end + timedelta(days=1))
        return end

    def join_for_end(self, plan: Plan, end: date) -> date:
        """A join day in the last three years from which on-time renewals of a 12-month rolling
        plan reach a term that ends on `end`."""
        options = [k for k in (1, 2, 3) if add_months(end + timedelta(days=1), -12 * k) >= self.horizon]
        k = self.rng.choice(options or [1])
        return add_months(end + timedelta(days=1), -12 * k)

    def random_day(self, first: date, last: date) -> date:
        if last <= first:
            return first
        return first + timedelta(days=self.rng.randint(0, (last - first).days))

    def person(self, persona: str) -> Person:
        rng, T = self.rng, self.today
        if persona == "loyal":
            plan = rng.choices([self.ind, self.cal, self.stu], [55, 28, 17])[0]
            p = Person(persona, plan, self.random_day(self.horizon, T - timedelta(days=2)))
            p.paid_later = rng.random() < 0.1 and p.join_day < T - timedelta(days=20)
            p.approved_later = plan is self.stu and rng.random() < 0.5
            if plan is self.stu and rng.random() < 0.4:
                p.switch_plan, p.switch_at = self.ind, 1  # graduated
            return p
        if persona == "upgrade":
            p = Person(persona, self.ind, self.random_day(self.horizon, T - timedelta(days=500)))
            p.switch_plan, p.switch_at = self.life, rng.choice([1, 2])
            return p
        if persona == "student_switch":
            p = Person(persona, self.stu, self.random_day(self.horizon, T - timedelta(days=400)))
            p.switch_plan, p.switch_at = self.ind, 1
            return p
        if persona == "early":
            end = T + timedelta(days=rng.randint(5, 40))
            return Person(persona, self.ind, self.join_for_end(self.ind, end))
        if persona in ("grace", "override_grace"):
            plan = self.ind if rng.random() < 0.8 else self.stu
            if persona == "grace":
                end = T - timedelta(days=rng.randint(2, plan.grace_days - 2))
            else:
                end = T - timedelta(days=plan.grace_days + rng.randint(3, 20))
            p = Person(persona, plan, self.join_for_end(plan, end))
            return p
        if persona in ("lapsed", "override_active"):
            for _ in range(100):
                plan = rng.choices([self.ind, self.cal, self.stu], [55, 30, 15])[0]
                n = rng.choice([0, 0, 1, 1, 2])
                join_day = self.random_day(self.horizon, T - timedelta(days=380))
                end = self.chain_end(plan, join_day, n + 1)
                if end is not None and end + timedelta(days=plan.grace_days + 7) < T:
                    return Person(persona, plan, join_day, renewals_left=n)
            return Person(persona, self.ind, self.horizon, renewals_left=0)
        if persona == "returner":
            plan = rng.choice([self.ind, self.cal])
            return Person(persona, plan, self.random_day(self.horizon, T - timedelta(days=700)))
        if persona == "cancelled":
            plan = rng.choices([self.ind, self.cal, self.life], [60, 30, 10])[0]
            return Person(persona, plan, self.random_day(self.horizon, T - timedelta(days=40)))
        if persona == "pending_payment":
            return Person(persona, self.ind, T - timedelta(days=rng.randint(0, 20)))
        if persona == "pending_approval":
            return Person(persona, self.stu, T - timedelta(days=rng.randint(0, 14)))
        if persona == "lifetime":
            return Person(persona, self.life, self.random_day(self.horizon, T - timedelta(days=2)))
        if persona == "prospect":
            return Person(persona, self.ind, self.random_day(T - timedelta(days=200), T))
        raise ValueError(persona)

    # ------------------------------------------------------------ member life

    def start_person(self, p: Person) -> None:
        def create(today: date, now: datetime) -> None:
            student = p.plan is self.stu
            p.member = self.create_member(today, now, student=student)
            self.plan_interactions(p)
            if p.persona == "prospect":
                self.at(today, lambda d, n: self.note(p.member, d, n, (
                    "event", "Enquired about membership at the Dhaka fair; took a leaflet.",
                    "Will decide after the AGM")))
                return
            online = p.persona in ("pending_payment",) or (p.paid_later and self.rng.random() < 0.5)
            pay = None if p.persona == "pending_payment" or p.paid_later else self.payment(p.plan, now)
            approved = not (p.persona == "pending_approval" or p.approved_later)
            term = plans.join(self.s, p.member, p.plan, today=today, now=now, actor=self.staff(),
                              payment=pay, approved=approved, source="join" if online else "staff", notify=False)
            self.result.terms += 1
            if p.paid_later:
                self.at(today + timedelta(days=self.rng.randint(1, 10)), lambda d, n: self.pay_later(p, term, d, n))
            if p.approved_later:
                self.at(today + timedelta(days=self.rng.randint(1, 7)), lambda d, n: self.approve(p, term, d, n))
            if p.persona == "pending_approval":
                self.at(today, lambda d, n: self.note(p.member, d, n, (
                    "email", "Application received; asked for a scan of the student ID card.",
                    "Waiting for the ID")), hour=17)
            if p.persona == "pending_payment":
                return
            self.next_step(p, term, today)

        self.at(p.join_day, create)

    def pay_later(self, p: Person, term: Membership, today: date, now: datetime) -> None:
        plans.pay_term(self.s, term, self.payment(term.plan, now), today=today, now=now, actor=self.staff(),
                       notify=False)

    def approve(self, p: Person, term: Membership, today: date, now: datetime) -> None:
        self.note(p.member, today, now, ("visit", "Brought the student ID card; application approved.", None))
        plans.approve(self.s, term, today=today, now=now, actor=self.staff())

    def next_step(self, p: Person, term: Membership, today: date) -> None:
        """Decide what the member does when this term nears its end (or during it)."""
        rng, T = self.rng, self.today
        S, E = term.starts_on, term.ends_on
        if E is None:
            if p.persona == "cancelled" and S <= T:
                self.at(self.random_day(max(S, today) + timedelta(days=30), T),
                        lambda d, n: self.cancel(term, d, n))
            return
        grace = term.grace_days
        if p.persona == "cancelled" and S <= T <= E:
            self.at(self.random_day(max(S, today), T), lambda d, n: self.cancel(term, d, n))
            return
        if p.persona in ("grace", "override_grace") and E + timedelta(days=grace) >= T - timedelta(days=25):
            self.at(E + timedelta(days=rng.randint(1, 20)), lambda d, n: self.renewal_call(p, term, d, n))
            if p.persona == "override_grace":
                self.at(T - timedelta(days=rng.randint(0, 2)), lambda d, n: self.override(
                    term, "grace", d, d + timedelta(days=14),
                    "Bank transfer sent on time; waiting for the bank to confirm it.", n))
            return
        if p.persona in ("lapsed", "override_active"):
            if p.renewals_left == 0:
                if rng.random() < 0.5:
                    self.at(E + timedelta(days=rng.randint(3, 40)), lambda d, n: self.renewal_call(p, term, d, n))
                if p.persona == "override_active":
                    self.at(T - timedelta(days=rng.randint(0, 3)), lambda d, n: self.override(
                        term, "active", d, d + timedelta(days=rng.randint(20, 60)),
                        "Fee waived until the AGM by the Executive Committee (hardship).", n))
                return
            p.renewals_left -= 1
        if p.persona == "returner" and not p.gapped:
            p.gapped = True
            late = E + timedelta(days=grace + rng.randint(15, 150))
            self.at(E + timedelta(days=rng.randint(5, grace)), lambda d, n: self.renewal_call(p, term, d, n))
            self.at(late, lambda d, n: self.renew(p, term, d, n))
            return
        if p.persona == "early" and E >= T:
            self.at(max(S, T - timedelta(days=rng.randint(0, 10))), lambda d, n: self.renew(p, term, d, n))
            return
        # Most renew in the last two weeks, some earlier, some only in the grace period (after the
        # reminders): so today's picture has renewals due soon and members in grace.
        roll = rng.random()
        if roll < 0.45:
            day = E - timedelta(days=rng.randint(0, 14))
        elif roll < 0.7:
            day = E - timedelta(days=rng.randint(15, 45))
        else:
            day = E + timedelta(days=rng.randint(1, max(1, grace - 1)))
        self.at(max(day, today, S), lambda d, n: self.renew(p, term, d, n))

    def renew(self, p: Person, term: Membership, today: date, now: datetime) -> None:
        plan = None
        if p.switch_plan is not None and p.renewals + 1 == p.switch_at:
            plan = p.switch_plan
            what = "upgrade to Lifetime" if plan is self.life else "move to the Individual plan after graduating"
            self.note(p.member, today, now, ("meeting", f"Discussed the {what}.", "Agreed"))
        new = plans.renew(self.s, term, today=today, now=now, actor=self.staff(), plan=plan,
                          payment=self.payment(plan or term.plan, now), notify=False)
        p.renewals += 1
        self.result.terms += 1
        self.next_step(p, new, today)

    def cancel(self, term: Membership, today: date, now: datetime) -> None:
        plans.cancel(self.s, term, on=today, reason=self.rng.choice(CANCEL_REASONS), today=today, now=now,
                     actor=self.staff())

    def override(self, term: Membership, status: str, today: date, until: date, reason: str,
                 now: datetime) -> None:
        plans.set_override(self.s, term, status=status, until=until, reason=reason, today=today, now=now,
                           actor=self.staff_users[0])

    def renewal_call(self, p: Person, term: Membership, today: date, now: datetime) -> None:
        channel, summary, outcome = self.rng.choice(RENEWAL_CALLS)
        self.note(p.member, today, now, (channel, summary.format(end=f"{term.ends_on:%d %b %Y}"), outcome),
                  follow_up=today + timedelta(days=7))

    def note(self, member: Member, today: date, now: datetime, note: tuple, follow_up: date | None = None) -> None:
        channel, summary, outcome = note
        if follow_up is not None and follow_up < self.today:
            follow_up = None  # old follow-ups were done; only the recent ones are still open
        members.add_interaction(self.s, member, channel=channel, summary=summary, outcome=outcome,
                                follow_up_on=follow_up, occurred_at=now, actor=self.staff(), now=now)
        self.result.interactions += 1

    def plan_interactions(self, p: Person) -> None:
        rng = self.rng
        count = rng.choices([0, 1, 2, 3, 4], [35, 30, 20, 10, 5])[0]
        for _ in range(count):
            day = self.random_day(p.join_day + timedelta(days=3), self.today)
            note = rng.choice(GENERAL_NOTES)
            follow = day + timedelta(days=rng.randint(7, 21)) if rng.random() < 0.2 else None
            self.at(day, lambda d, n, note=note, follow=follow: self.note(p.member, d, n, note, follow))
        if rng.random() < 0.1:
            self.at(self.random_day(p.join_day + timedelta(days=30), self.today),
                    lambda d, n: self.profile_change(p.member, d, n))

    def profile_change(self, member: Member, today: date, now: datetime) -> None:
        area, city, postcode = self.rng.choice(ADDRESSES)
        values = {"address_line1": f"Flat {self.rng.randint(1, 9)}B, House {self.rng.randint(1, 99)}",
                  "address_line2": area, "city": city, "postcode": postcode, "country": "BD"}
        if self.rng.random() < 0.5:
            values["phone"] = demo_phone(self.rng, self.region)
        valid = members.validate_member(values, region=self.region, today=today, partial=True)
        members.update_member(self.s, member, valid, actor=self.staff(), now=now)

    # ------------------------------------------------------------ organisations

    def start_organization(self, index: int, persona: str, contacts: int) -> None:
        rng, T = self.rng, self.today
        name, slug, address = ORGANISATIONS[index % len(ORGANISATIONS)]
        if index >= len(ORGANISATIONS):
            name = f"{name} ({index // len(ORGANISATIONS) + 1})"
        plan = self.corp
        if persona == "grace":
            join_day = self.join_for_end(plan, T - timedelta(days=rng.randint(5, plan.grace_days - 5)))
        elif persona == "early":
            join_day = self.join_for_end(plan, T + timedelta(days=rng.randint(5, 30)))
        elif persona == "lapsed":
            join_day = self.random_day(self.horizon, T - timedelta(days=365 + plan.grace_days + 30))
        else:
            join_day = self.random_day(self.horizon, T - timedelta(days=60))

        def create(today: date, now: datetime) -> None:
            values = members.validate_organization(
                {"name": name, "email": f"info@{slug}.example.com", "phone": demo_phone(rng, self.region),
                 "website": f"https://www.{slug}.example.com", "address": address}, region=self.region)
            org = members.save_organization(self.s, values, actor=self.staff(), now=now)
            self.result.organizations += 1
            term = plans.join(self.s, org, plan, today=today, now=now, actor=self.staff(),
                              payment=self.payment(plan, now), notify=False)
            self.result.terms += 1
            first = min(contacts, 2)
            for i in range(first):
                self.add_contact(org, today, now, primary=i == 0)
            for _ in range(contacts - first):
                self.at(self.random_day(today + timedelta(days=20), T), lambda d, n: self.add_contact(org, d, n))
            self.org_next_step(org, persona, term, today)

        self.at(join_day, create)

    def add_contact(self, org: Organization, today: date, now: datetime, primary: bool = False) -> None:
        member = self.create_member(today, now, job_title=self.rng.choice(JOB_TITLES))
        members.add_contact(self.s, org, member, primary=primary, actor=self.staff(), now=now, today=today)
        if self.rng.random() < 0.5:
            self.at(self.random_day(today + timedelta(days=10), self.today),
                    lambda d, n: self.note(member, d, n, self.rng.choice(GENERAL_NOTES)))

    def org_next_step(self, org: Organization, persona: str, term: Membership, today: date) -> None:
        E, T = term.ends_on, self.today
        if persona == "lapsed" or (persona == "grace" and E + timedelta(days=term.grace_days) >= T - timedelta(days=30)):
            return
        if persona == "early" and E >= T:
            day = max(term.starts_on, T - timedelta(days=self.rng.randint(0, 7)))
        else:
            day = E - timedelta(days=self.rng.randint(0, 30))

        def renew(d: date, n: datetime) -> None:
            new = plans.renew(self.s, term, today=d, now=n, actor=self.staff(), payment=self.payment(term.plan, n),
                              notify=False)
            self.result.terms += 1
            self.org_next_step(org, persona, new, d)

        self.at(max(day, today), renew)

    # ------------------------------------------------------------ the whole thing

    # One of each first, so a small demo still shows every status; then by weight.
    REQUIRED = ["loyal", "grace", "lapsed", "cancelled", "pending_payment", "pending_approval", "early",
                "returner", "lifetime", "override_active", "override_grace", "upgrade", "student_switch",
                "prospect"]
    WEIGHTS = {"loyal": 47, "early": 5, "returner": 7, "grace": 6, "lapsed": 14, "cancelled": 5,
               "pending_payment": 1.5, "pending_approval": 1, "lifetime": 3, "upgrade": 2, "student_switch": 3,
               "prospect": 1}

    def add_events(self) -> None:
        """Past events with registrations, check-ins and no-shows (so engagement and churn risk
        have events to count), and upcoming ones open for registration, through the events domain
        functions at the moments they happened. No emails: they would all go out at the start."""
        from membership.core.errors import DomainError
        from membership.events import services as ev

        def local(at: datetime) -> str:
            return at.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")

        people = [m for m in self.members if m.erased_at is None]
        for (title, offset, hour, hours, venue, capacity, members_only, member_fee, fee, share) in DEMO_EVENTS:
            day = self.today + timedelta(days=offset)
            if day < self.horizon:
                continue
            starts = local_midnight_utc(day, self.zone) + timedelta(hours=hour)
            ends = starts + timedelta(hours=hours)
            data = ev.validate_event({
                "title": title, "venue": venue, "starts_at": local(starts), "ends_at": local(ends),
                "description": ("For members only." if members_only else "Members and guests welcome.")
                + " Tea and snacks are served.",
                "capacity": "" if capacity is None else str(capacity), "members_only": members_only,
                "member_price": f"{_fee(member_fee, self.currency) / 100:.2f}",
                "non_member_price": f"{_fee(fee, self.currency) / 100:.2f}" if fee else "0",
                "reminder_hours_before": "24"}, zone=self.zone, currency=self.currency)
            created = min(starts - timedelta(days=40), self.end_at - timedelta(hours=1))
            event = ev.create_event(self.s, data, now=created, actor=None)
            ev.publish_event(self.s, event, now=created, actor=None)
            self.result.events += 1
            latest = min(starts, self.end_at) - timedelta(hours=1)
            candidates = [m for m in people if m.joined_on is not None and m.joined_on <= day]
            for member in self.rng.sample(candidates, round(len(candidates) * share)):
                at = created + (latest - created) * self.rng.uniform(0.05, 1.0)
                try:
                    registration = ev.register_member(self.s, event, member, now=at, actor=None, email=False)
                except DomainError:
                    continue  # not current then (members only), or full without a waitlist
                self.result.registrations += 1
                if ends < self.end_at and registration.status == "confirmed" and self.rng.random() < 0.8:
                    ev.check_in(self.s, registration, now=starts + timedelta(minutes=self.rng.randint(-20, 40)),
                                actor=None)
            if ends + timedelta(hours=2) < self.end_at:
                ev.finish_event(self.s, event, now=ends + timedelta(hours=2))
        self.s.flush()

    def load(self) -> DemoResult:
        self.s.add(Counter(name=DEMO_MARKER, value=self.seed))
        self.make_staff()
        self.make_plans()
        n_orgs = max(2, min(len(ORGANISATIONS), self.n // 50))
        budget = max(4, self.n // 7)  # contacts take at most about a seventh of the members
        org_personas = ["active", "lapsed", "early", "grace", "active", "active", "active", "active"]
        sizes = [self.rng.randint(2, 5) for _ in range(n_orgs)]
        while sum(sizes) > budget and max(sizes) > 2:
            sizes[sizes.index(max(sizes))] -= 1
        for i in range(n_orgs):
            self.start_organization(i, org_personas[i % len(org_personas)], sizes[i])
        individuals = self.n - sum(sizes)
        if individuals < len(self.REQUIRED):
            raise ValueError(f"a demo needs at least {len(self.REQUIRED) + sum(sizes)} members")
        names = list(self.WEIGHTS)
        personas = self.REQUIRED + self.rng.choices(names, [self.WEIGHTS[n] for n in names],
                                                    k=individuals - len(self.REQUIRED))
        for persona in personas:
            self.start_person(self.person(persona))
        self.run()
        self.add_events()
        plans.apply_status_transitions(self.s, today=self.today, now=self.end_at, notify=False)
        self.s.flush()
        rows = self.s.execute(select(Member.status, func.count()).group_by(Member.status)).all()
        self.result.statuses = {status: n for status, n in sorted(rows)}
        return self.result


# (title, days from today, local start hour, hours, venue, capacity, members only, member fee,
# non-member fee (taka), share of members who register)
DEMO_EVENTS = (
    ("Annual general meeting 2025", -540, 17, 2, "Main hall, Samiti House", None, True, 0, 0, 0.30),
    ("Networking breakfast", -470, 8, 2, "Lake View Hotel", 60, False, 500, 800, 0.20),
    ("Workshop: digital marketing for small firms", -400, 10, 4, "Training room 2", 30, False, 1000, 2000, 0.15),
    ("Spring social", -300, 18, 3, "Rooftop terrace, Samiti House", 120, False, 0, 300, 0.30),
    ("Seminar: the new trade regulations", -230, 15, 2, "Auditorium", 150, True, 0, 0, 0.25),
    ("Annual general meeting 2026", -175, 17, 2, "Main hall, Samiti House", None, True, 0, 0, 0.30),
    ("Networking breakfast", -120, 8, 2, "Lake View Hotel", 60, False, 500, 800, 0.20),
    ("Workshop: export paperwork", -60, 10, 3, "Training room 2", 25, False, 800, 1500, 0.15),
    ("Members' evening", -20, 18, 3, "Samiti House", 80, True, 0, 0, 0.25),
    ("Networking breakfast", 12, 8, 2, "Lake View Hotel", 60, False, 500, 800, 0.10),
    ("Workshop: bookkeeping basics", 26, 10, 3, "Training room 2", 20, False, 800, 1500, 0.08),
    ("Annual general meeting 2027", 45, 17, 2, "Main hall, Samiti House", None, True, 0, 0, 0.05),
)


def load_demo(session: Session, *, members: int = 300, seed: int = 1, today: date, end_at: datetime,
              zone: str, region: str, currency: str,
              progress: Callable[[int], None] | None = None) -> DemoResult:
    """Fill an empty database with `members` demo members and three years of history up to `today`
    (the last moment being `end_at`). Deterministic for a seed and a day.

    Raises ValueError when the database is not empty (members or plans) or `members` is too small.
    Adds and flushes; the caller commits (one transaction: an interrupted load leaves nothing).
    `progress(days)` is called as simulated time moves on (demo_days() in total).
    """
    if not database_is_empty(session):
        raise ValueError("the database is not empty")
    return _Demo(session, n_members=members, seed=seed, today=today, end_at=end_at, zone=zone, region=region,
                 currency=currency, progress=progress).load()


def demo_days(today: date) -> int:
    """How many simulated days load_demo reports through `progress`."""
    return (today - (add_months(today, -12 * YEARS) - timedelta(days=30))).days


# ---------------------------------------------------------------- demo logins


@dataclass
class DemoLogin:
    role: str
    email: str
    password: str | None  # None: the password was changed in Samiti, or was set by someone else
    note: str = ""


def new_password() -> str:
    """A random password that is easy to type: four groups of four."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    while True:
        password = "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4))
        if accounts.password_problem(password) is None:
            return password


def read_logins(path: Path) -> dict[str, tuple[str, str]]:
    """role -> (email, password) from the logins file; empty when there is none."""
    out: dict[str, tuple[str, str]] = {}
    if not path.exists():
        return out
    for line in path.read_text("utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) >= 3 and parts[2] != "-":
            out[parts[0]] = (parts[1], parts[2])
    return out


def write_logins(path: Path, logins: list[DemoLogin], now: datetime) -> None:
    """Write the file with mode 600 (readable by its owner only), replacing it atomically."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"# Samiti demo logins, written {now:%Y-%m-%d %H:%M} UTC. role<TAB>email<TAB>password\n"
                 "# `flask --app wsgi serve --reset-logins` gives them new passwords.\n")
        for login in logins:
            fh.write(f"{login.role}\t{login.email}\t{login.password or '-'}\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def demo_login_member(session: Session) -> Member | None:
    """The member whose login the demo prints: an individual, current member with some history."""
    terms = (select(Membership.member_id, func.count().label("n")).where(Membership.member_id.is_not(None))
             .group_by(Membership.member_id).subquery())
    return session.scalar(
        select(Member).join(terms, terms.c.member_id == Member.id)
        .where(Member.status == "active", Member.email.is_not(None), Member.organization_id.is_(None),
               terms.c.n >= 2)
        .order_by(Member.id).limit(1))


def ensure_demo_logins(session: Session, path: Path, *, now: datetime, reset: bool = False,
                       roles: tuple[str, ...] = ("admin", "staff", "member")) -> list[DemoLogin]:
    """Make sure the demo logins of `roles` exist (an admin, a staff user, and a member login linked
    to a demo member), with passwords generated once and kept in `path`, so that every start
    prints the same ones.

    A password changed in Samiti since is kept (and not shown); `reset` sets new ones.
    Adds and flushes; the caller commits, then calls write_logins.
    """
    saved = {} if reset else read_logins(path)
    wanted = [(role, email, name) for role, email, name in STAFF[:2] if role in roles]
    member = None
    if "member" in roles:
        if "member" in saved:
            user = accounts.get_user_by_email(session, saved["member"][0])
            member = user.member if user is not None and user.member_id else None
        member = member or demo_login_member(session)
        if member is not None:
            wanted.append(("member", member.email, member.full_name))
    logins = []
    for role, email, name in wanted:
        user = accounts.get_user_by_email(session, email)
        password = saved[role][1] if role in saved and saved[role][0] == email else None
        note = f"{member.full_name}, {member.member_number}" if role == "member" else ""
        if user is None:
            password = password or new_password()
            accounts.create_user(session, email=email, name=name, role=role, password=password, actor=None,
                                 now=now, member_id=member.id if role == "member" else None)
        elif user.password_hash is None or reset:
            # Made by the demo loader without a password (or new passwords were asked for).
            password = password or new_password()
            accounts.set_password(session, user, password, actor=None, now=now)
        elif password is None or not check_password_hash(user.password_hash, password):
            password = None
            note = "password set in Samiti; not shown"
        logins.append(DemoLogin(role, email, password, note))
    session.flush()
    return logins
