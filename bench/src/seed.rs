//! Rows the figures start from, written with `INSERT … SELECT generate_series` in the shapes
//! firstcall itself writes (see `migration/`): orders with their webhook events, open calls with
//! their pending timers and audit rows, open calls of CRM deals waiting for their pull, no-op
//! jobs, outbox emails, and the tables the graphile-worker step reference writes to.

use sqlx::PgConnection;

/// The line items every seeded order carries, as `intake` stores them.
const LINE_ITEMS: &str = r#"[{"sku":"PLAT-ENT","name":"Platform, enterprise edition (annual)","quantity":1.0,"unit_price":{"minor":3600000,"currency":"USD"}},{"sku":"SEAT-PRO","name":"Professional seats","quantity":150.0,"unit_price":{"minor":4900,"currency":"USD"}}]"#;

/// The raw event stored with each seeded order (smaller than a real one; it is never read).
const EVENT_PAYLOAD: &str = r#"{"type":"order.created","order":{"amount":"48250.00","currency":"USD","account_name":"Seeded account"}}"#;

/// Open calls (state `due`, invite sent) for orders `from..=to`, each with timers.
pub struct Calls<'a> {
    /// Makes deal ids unique across seeds in one database.
    pub tag: &'a str,
    pub from: i64,
    pub to: i64,
    /// SQL for the order time, over the series value `g`.
    pub ordered_at: &'a str,
    /// SQL for the call's due time, over `o.ordered_at`.
    pub due_at: &'a str,
    /// Timers per call: kind and SQL for `run_at` over `c.due_at`.
    pub timers: &'a [(&'a str, &'a str)],
    /// Also write the webhook event and the audit row each real order leaves behind.
    pub history: bool,
}

/// Ids of the timers written, first and last (they are consecutive).
#[derive(Debug, Clone, Copy)]
pub struct IdRange {
    pub lo: i64,
    pub hi: i64,
    pub count: i64,
    /// When the transaction that inserted them began (their `created_at`): a job another process
    /// inserted meanwhile (the engine's own retention sweep) may take an id inside the range.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl<'a> Calls<'a> {
    /// `n` open calls of deals `D-{tag}-1…n`, ordered now and due tomorrow, each with a
    /// reminder due now.
    pub fn reminders_due_now(tag: &'a str, n: i64, history: bool) -> Calls<'a> {
        Calls {
            tag,
            from: 1,
            to: n,
            ordered_at: "now()",
            due_at: "o.ordered_at + interval '1 day'",
            timers: &[("call.remind", "now()")],
            history,
        }
    }

    pub async fn insert(&self, db: &mut PgConnection) -> anyhow::Result<IdRange> {
        let Calls { tag, from, to, ordered_at, due_at, timers, history } = self;
        let history_ctes = if *history {
            format!(
                ", e AS (INSERT INTO webhook_events (source, dedupe_key, event_type, deal_id, occurred_at, received_at, payload, outcome, order_id) \
                 SELECT 'generic', 'evt-' || o.deal_id, 'order.created', o.deal_id, o.ordered_at, o.ordered_at, '{EVENT_PAYLOAD}', 'opened', o.id FROM o), \
                 a AS (INSERT INTO audit_log (at, actor, entity, entity_id, action, from_state, to_state, detail) \
                 SELECT now(), 'webhook:generic', 'call', c.id, 'opened', NULL, 'scheduled', NULL FROM c)"
            )
        } else {
            String::new()
        };
        let jobs =
            timers.iter().map(|(kind, run_at)| format!("SELECT '{kind}', c.id, {run_at} FROM c")).collect::<Vec<_>>().join(" UNION ALL ");
        let sql = format!(
            "WITH o AS (INSERT INTO orders (source, deal_id, status, amount_minor, currency, rep_email, segment, account_name, line_items, ordered_at, status_at, last_event_at, created_at, updated_at) \
             SELECT 'generic', 'D-{tag}-' || g, 'open', 4825000, 'USD', 'rep' || (g % 500) || '@bench.example', 'mid-market', 'Account ' || g, '{LINE_ITEMS}'::json, \
             {ordered_at}, {ordered_at}, {ordered_at}, now(), now() FROM generate_series({from}::bigint, {to}::bigint) g \
             RETURNING id, deal_id, rep_email, ordered_at), \
             c AS (INSERT INTO calls (order_id, source, deal_id, rep_email, state, schedule_name, ordered_at, due_at, invite_sequence, reminders_sent, escalation_level, created_at, updated_at) \
             SELECT o.id, 'generic', o.deal_id, o.rep_email, 'due', 'default', o.ordered_at, {due_at}, 1, 0, 0, now(), now() FROM o RETURNING id, due_at){history_ctes}, \
             j AS (INSERT INTO jobs (kind, subject_id, payload, run_at, state, attempts, max_attempts, created_at, updated_at) \
             SELECT t.kind, t.subject_id, NULL, t.run_at, 'pending', 0, 8, now(), now() FROM ({jobs}) AS t(kind, subject_id, run_at) RETURNING id) \
             SELECT min(id), max(id), count(*), now() FROM j"
        );
        id_range(db, &sql).await
    }
}

async fn id_range(db: &mut PgConnection, sql: &str) -> anyhow::Result<IdRange> {
    let (lo, hi, count, created_at): (Option<i64>, Option<i64>, i64, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(db).await?;
    Ok(IdRange { lo: lo.unwrap_or(0), hi: hi.unwrap_or(0), count, created_at })
}

/// Open calls of `n` won deals of CRM `source` as the opening leaves them before the CRM is read:
/// for each deal id `first_deal..first_deal + n` (digits, as HubSpot's are) an order and its call
/// (`scheduled`, no email sent yet) with a `crm.enrich` job due now whose payload names the source
/// and the deal. The opening also writes the call's first step (`call.start`, due at the end of
/// the wait); it is left out, because the pull brings it forward to now and the first emails
/// would then be composed and sent during the figure. Returns the `crm.enrich` jobs' ids.
pub async fn crm_calls(db: &mut PgConnection, source: &str, first_deal: i64, n: i64) -> anyhow::Result<IdRange> {
    let sql = format!(
        "WITH o AS (INSERT INTO orders (source, deal_id, status, amount_minor, currency, rep_email, segment, account_name, line_items, ordered_at, status_at, last_event_at, created_at, updated_at) \
         SELECT $1::text, ($2::bigint + g)::text, 'open', 6440000, 'USD', 'rep' || (g % 500) || '@bench.example', 'mid-market', 'Account ' || g, '{LINE_ITEMS}'::json, \
         now(), now(), now(), now(), now() FROM generate_series(0, $3::bigint - 1) g \
         RETURNING id, deal_id, rep_email, ordered_at), \
         c AS (INSERT INTO calls (order_id, source, deal_id, rep_email, state, schedule_name, ordered_at, due_at, invite_sequence, reminders_sent, escalation_level, created_at, updated_at) \
         SELECT o.id, $1::text, o.deal_id, o.rep_email, 'scheduled', 'default', o.ordered_at, o.ordered_at + interval '1 day', 0, 0, 0, now(), now() FROM o \
         RETURNING id, deal_id), \
         j AS (INSERT INTO jobs (kind, subject_id, payload, run_at, state, attempts, max_attempts, created_at, updated_at) \
         SELECT 'crm.enrich', c.id, json_build_object('source', $1::text, 'deal_id', c.deal_id), now(), 'pending', 0, 8, now(), now() FROM c RETURNING id) \
         SELECT min(id), max(id), count(*), now() FROM j"
    );
    let (lo, hi, count, created_at): (Option<i64>, Option<i64>, i64, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(source).bind(first_deal).bind(n).fetch_one(db).await?;
    Ok(IdRange { lo: lo.unwrap_or(0), hi: hi.unwrap_or(0), count, created_at })
}

/// `n` jobs of the engine's own `kind` (`noop` or `noop.step`) due now.
pub async fn noop_jobs(db: &mut PgConnection, kind: &str, n: i64) -> anyhow::Result<IdRange> {
    let sql = format!(
        "WITH j AS (INSERT INTO jobs (kind, subject_id, payload, run_at, state, attempts, max_attempts, created_at, updated_at) \
         SELECT '{kind}', NULL, NULL, now(), 'pending', 0, 8, now(), now() FROM generate_series(1, {n}) RETURNING id) \
         SELECT min(id), max(id), count(*), now() FROM j"
    );
    id_range(db, &sql).await
}

/// `n` outbox emails due now, sized like a first-call email without its invite (about 2 KB of
/// text and 6 KB of HTML).
pub async fn emails(db: &mut PgConnection, n: i64) -> anyhow::Result<()> {
    let text = "Your first call with the customer is due. Here is what they asked for and what was promised.\n".repeat(22);
    let html = format!("<p>{}</p>", "Requirement <b>R-1</b>: single sign-on for every seat; committed by <i>2026-12-01</i>. ".repeat(70));
    let sql = "INSERT INTO emails (message_id, call_id, kind, to_addr, to_name, subject, body_text, body_html, ics, ics_method, state, attempts, \
               unknown_outcomes, next_attempt_at, created_at, updated_at) \
               SELECT 'bench-' || g || '@firstcall.bench', NULL, 'first_call', 'rep' || (g % 500) || '@bench.example', 'Bench Rep', \
               'First call with Account ' || g || ': recap and invite', $1, $2, NULL, NULL, 'pending', 0, 0, now(), now(), now() \
               FROM generate_series(1, $3::bigint) g";
    sqlx::query(sql).bind(text).bind(html).bind(n).execute(db).await?;
    Ok(())
}

/// The reference's own tables for the step comparison: `n` calls, each with a counter its step
/// raises, and an outbox its step writes one row into.
pub async fn reference_calls(db: &mut PgConnection, n: i64) -> anyhow::Result<()> {
    sqlx::query("CREATE TABLE ref_calls (id bigint PRIMARY KEY, reminders_sent integer NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL DEFAULT now())")
        .execute(&mut *db)
        .await?;
    sqlx::query(
        "CREATE TABLE ref_outbox (id bigserial PRIMARY KEY, call_id bigint NOT NULL, subject text NOT NULL, body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(&mut *db)
    .await?;
    sqlx::query("INSERT INTO ref_calls (id) SELECT g FROM generate_series(1, $1::bigint) g").bind(n).execute(&mut *db).await?;
    sqlx::query("ANALYZE").execute(&mut *db).await?;
    Ok(())
}

/// Calls marked done whose deals' commitments became open promises, as the done form leaves them:
/// for orders `from..=to` of deals `D-{tag}-…` an order, its call (`done`, outcome `aligned`) and
/// `per_call` open promises, each with its `promised` audit row and its two pending timers, a
/// reminder the working day before its date and an escalation after it. The dates fall 7 to 96
/// days ahead, so no timer is due while a figure runs. Returns the promises' count.
pub async fn promises(db: &mut PgConnection, tag: &str, from: i64, to: i64, per_call: i64) -> anyhow::Result<i64> {
    let sql = format!(
        "WITH o AS (INSERT INTO orders (source, deal_id, status, amount_minor, currency, rep_email, segment, account_name, line_items, ordered_at, status_at, last_event_at, created_at, updated_at) \
         SELECT 'generic', 'D-{tag}-' || g, 'open', 4825000, 'USD', 'rep' || (g % 500) || '@bench.example', 'mid-market', 'Account ' || g, '{LINE_ITEMS}'::json, \
         now() - interval '3 days', now() - interval '3 days', now() - interval '3 days', now(), now() FROM generate_series({from}::bigint, {to}::bigint) g \
         RETURNING id, deal_id, rep_email, ordered_at), \
         c AS (INSERT INTO calls (order_id, source, deal_id, rep_email, state, schedule_name, ordered_at, due_at, invite_sequence, reminders_sent, escalation_level, \
         outcome, completed_at, completed_by, created_at, updated_at) \
         SELECT o.id, 'generic', o.deal_id, o.rep_email, 'done', 'default', o.ordered_at, o.ordered_at + interval '1 day', 1, 0, 0, \
         'aligned', now() - interval '1 day', o.rep_email, now(), now() FROM o RETURNING id, deal_id, rep_email), \
         p AS (INSERT INTO promises (call_id, source, deal_id, position, commitment_id, text, covers, need_by, must_have, owner_email, deliver_by, \
         state, reminders_sent, overdue_reminders, escalation_level, created_at, updated_at) \
         SELECT c.id, 'generic', c.deal_id, k - 1, 'C-' || k, 'Commitment ' || k || ': single sign-on for every seat, live before the rollout', ('[\"R-' || k || '\"]')::json, \
         current_date + (14 + (c.id * {per_call} + k) % 90)::int, k = 1, c.rep_email, current_date + (7 + (c.id * {per_call} + k) % 90)::int, \
         'open', 0, 0, 0, now() - interval '1 day', now() - interval '1 day' FROM c CROSS JOIN generate_series(1, {per_call}::int) k \
         RETURNING id, call_id, owner_email, deliver_by), \
         a AS (INSERT INTO audit_log (at, actor, entity, entity_id, action, from_state, to_state, detail) \
         SELECT now() - interval '1 day', p.owner_email, 'promise', p.id, 'promised', NULL, 'open', json_build_object('call', p.call_id, 'owner', p.owner_email, 'deliver_by', p.deliver_by) FROM p), \
         j AS (INSERT INTO jobs (kind, subject_id, payload, run_at, state, attempts, max_attempts, created_at, updated_at) \
         SELECT t.kind, t.subject_id, NULL, t.run_at, 'pending', 0, 8, now(), now() FROM \
         (SELECT 'promise.remind', p.id, (p.deliver_by - 1)::timestamp AT TIME ZONE 'UTC' + interval '9 hours' FROM p \
          UNION ALL SELECT 'promise.escalate', p.id, (p.deliver_by + 2)::timestamp AT TIME ZONE 'UTC' FROM p) AS t(kind, subject_id, run_at) RETURNING 1) \
         SELECT count(*) FROM p"
    );
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(db).await?;
    Ok(n)
}
