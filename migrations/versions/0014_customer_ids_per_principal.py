"""A customer principal owns at most `MAX_CUSTOMER_IDS_PER_PRINCIPAL` customer ids.

The payment stage's credit limit, and its ledger and shard, follow the customer id: a principal
that ordered for new ids `c-x1`, `c-x2`, … got a fresh `CREDIT_LIMIT` with each (found in
review, 2026-12-06). The claim is part of the accept statement (adapters/accept_store.py), and
a count in that statement cannot be exact: it sees the table as it was when the statement began,
so two concurrent batches of one principal would both see room for one more id. This trigger
counts instead, one claimer per principal at a time:

- the cap is the connection's `orders.customer_ids_per_principal` setting; the gateway's accept
  pool sets it (`serve_app/wiring.py`; the gateway refuses to start when its sessions do not
  have it, as behind a pooler that drops libpq's `options`); any other session (migrations,
  admins' tools, tests that insert owners directly) claims without a cap;
- a claimer first takes a transaction-scoped advisory lock on its principal *without waiting*
  (`pg_try_advisory_xact_lock`): a batch never waits for another here, so two batches that
  claim for the same principals in another order cannot deadlock. A claim whose lock is busy is
  skipped, and its request is submitted again (`Outcome.RETRY`, as for an id claimed
  concurrently);
- with the lock held, the count is exact: a PL/pgSQL query in a `READ COMMITTED` transaction
  takes a new snapshot, so it sees every committed claim (the previous holder's lock is released
  only after its commit is visible) and the rows this statement inserted before this one;
- only a claim runs it: the accept statement inserts only ids it does not find owned, so an
  order for an id its principal owns takes no lock and counts nothing;
- a principal at the cap claims nothing (the row is skipped, not an error, so the batch's other
  orders are stored); the gateway answers that request 403 `customer_id_limit`.

Ids owned before this migration stay owned, beyond the cap too; the cap stops new claims only.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

CAP = """
CREATE FUNCTION customer_owners_cap() RETURNS trigger
LANGUAGE plpgsql VOLATILE SET search_path = {schema}, pg_temp AS $fn$
DECLARE
  cap int := nullif(current_setting('orders.customer_ids_per_principal', true), '')::int;
  owned int;
BEGIN
  IF cap IS NULL THEN
    RETURN NEW;
  END IF;
  IF NOT pg_try_advisory_xact_lock(hashtext('customer_owners'), hashtext(NEW.principal)) THEN
    RETURN NULL;
  END IF;
  SELECT count(*) INTO owned FROM customer_owners WHERE principal = NEW.principal;
  IF owned >= cap THEN
    RETURN NULL;
  END IF;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER customer_owners_cap BEFORE INSERT ON customer_owners
  FOR EACH ROW EXECUTE FUNCTION customer_owners_cap();
"""


def upgrade() -> None:
    op.create_index("customer_owners_principal", "customer_owners", ["principal"])
    schema = op.get_bind().execute(text("SELECT current_schema()")).scalar()
    op.execute(CAP.format(schema=schema))


def downgrade() -> None:
    op.execute("DROP TRIGGER customer_owners_cap ON customer_owners")
    op.execute("DROP FUNCTION customer_owners_cap()")
    op.drop_index("customer_owners_principal", table_name="customer_owners")
