"""Every Flask command, one module per area; COMMANDS lists what create_app registers."""
from membership.commands.accounts import create_admin
from membership.commands.demo import demo, serve
from membership.commands.engagement import churn_group, history_group
from membership.commands.i18n import i18n_group
from membership.commands.members import members_group
from membership.commands.ops import backup, restore
from membership.commands.scheduler import scheduler_group
from membership.api.cli import api_group

COMMANDS = [create_admin, demo, serve, members_group, scheduler_group, history_group, churn_group,
            i18n_group, backup, restore, api_group]
