"""Imports every domain's models, so the metadata (and Alembic) sees all tables."""
from membership.accounts.models import User  # noqa: F401
from membership.core.models import Activity, AuditLog, Counter  # noqa: F401
from membership.members.models import Interaction, Member, MemberTag, Organization  # noqa: F401
from membership.plans.models import Membership, Payment, Plan  # noqa: F401
from membership.notifications.models import (  # noqa: F401
    EmailTemplate, JobLease, JobRun, OutboxMessage, ReminderRule)
from membership.support.models import HelpMessage, HelpRequest  # noqa: F401
from membership.privacy.models import ClosureRequest  # noqa: F401
from membership.events.models import Event, EventFeedback, EventRegistration  # noqa: F401
from membership.engagement.models import ChurnModel, CurrentScore, MemberScore, RiskAlert, Segment, Setting  # noqa: F401
from membership.ops.models import SchedulerHeartbeat  # noqa: F401
from membership.engagement.models import ChurnOutcome  # noqa: F401
from membership.campaigns.models import Campaign, CampaignVersion  # noqa: F401
from membership.surveys.models import Survey, SurveyAnswer, SurveyFollowUp, SurveyQuestion, SurveyResponse  # noqa: F401
from membership.referrals.models import ReferralReward  # noqa: F401
from membership.api.models import ApiToken  # noqa: F401
from membership.payments.models import Checkout, ProcessedNotification, SavedCard  # noqa: F401
from membership.payments.autorenew_models import AutoRenewalCharge  # noqa: F401
