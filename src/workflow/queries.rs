//! Reading calls for the API and the pages: the list filter and order, and one call with its
//! emails and pending timers. Read-only; the views that serialize them live with each surface.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::CallState;
use crate::domain::EmailAddress;
use entity::{calls, emails, jobs};

/// The list filter as a condition: calls in any of `states` (all when empty), of one rep.
pub fn filter(states: &[CallState], rep: Option<&EmailAddress>) -> Condition {
    let mut c = Condition::all();
    if !states.is_empty() {
        c = c.add(calls::Column::State.is_in(states.iter().copied()));
    }
    if let Some(r) = rep {
        c = c.add(calls::Column::RepEmail.eq(r.as_str()));
    }
    c
}

/// Where a page of the call list starts: just after this call, in list order. The list is
/// open calls by due time (then id), then closed ones by when they closed, newest first (then
/// id, highest first); the position holds that order's key, so a page starts in the right place
/// whatever was added or changed since the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// After the open call `id`, due at `due_at`.
    Open { due_at: DateTime<Utc>, id: i64 },
    /// After the closed call `id`, closed at `closed_at`.
    Closed { closed_at: DateTime<Utc>, id: i64 },
}

impl Position {
    /// The position just after `call`.
    pub fn after(call: &calls::Model) -> Position {
        if call.state.is_open() {
            Position::Open { due_at: call.due_at, id: call.id }
        } else {
            Position::Closed { closed_at: closed_at(call), id: call.id }
        }
    }
}

/// When a closed call closed: marked done or cancelled (its last change otherwise). The same
/// expression as [`CLOSED_AT`] and the `calls_closed_recent` index.
pub fn closed_at(call: &calls::Model) -> DateTime<Utc> {
    call.completed_at.or(call.cancelled_at).unwrap_or(call.updated_at)
}

const CLOSED_AT: &str = "COALESCE(completed_at, cancelled_at, updated_at)";

/// A page of the call list, and where the next one starts (`None` on the last page).
#[derive(Debug)]
pub struct CallPage {
    pub calls: Vec<calls::Model>,
    pub next: Option<Position>,
}

fn state_list(states: &[CallState]) -> String {
    crate::db::name_list(states.iter().map(|s| s.as_str()))
}

/// Up to `limit` calls in any of `states` (all when empty), of one rep, after `after`: open
/// ones by due time (the most overdue on top), then closed ones, the most recently closed first.
/// Each part reads its own index (`calls_open_due`, `calls_closed_recent`) from the position
/// on, so a page costs the same however deep it is.
pub async fn page_of_calls(
    db: &impl ConnectionTrait,
    states: &[CallState],
    rep: Option<&EmailAddress>,
    after: Option<Position>,
    limit: u64,
) -> Result<CallPage, DbErr> {
    let wanted = |s: &CallState| states.is_empty() || states.contains(s);
    let open: Vec<CallState> = CallState::OPEN.into_iter().filter(wanted).collect();
    let closed: Vec<CallState> = CallState::ALL.into_iter().filter(|s| !s.is_open()).filter(wanted).collect();
    let rep = rep.map(EmailAddress::as_str);
    // One more than asked for tells whether another page follows.
    let want = limit.saturating_add(1);
    let mut rows = Vec::new();
    if !open.is_empty() && !matches!(after, Some(Position::Closed { .. })) {
        let after = match after {
            Some(Position::Open { due_at, id }) => Some((due_at, id)),
            _ => None,
        };
        rows = section(db, Section::Open, &open, rep, after, want).await?;
    }
    if (rows.len() as u64) < want && !closed.is_empty() {
        let after = match after {
            Some(Position::Closed { closed_at, id }) => Some((closed_at, id)),
            _ => None,
        };
        rows.extend(section(db, Section::Closed, &closed, rep, after, want - rows.len() as u64).await?);
    }
    let next = if rows.len() as u64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(Position::after)
    } else {
        None
    };
    Ok(CallPage { calls: rows, next })
}

#[derive(Clone, Copy)]
enum Section {
    Open,
    Closed,
}

/// Calls of one part of the list, in its order, after `(key, id)`.
async fn section(
    db: &impl ConnectionTrait,
    part: Section,
    states: &[CallState],
    rep: Option<&str>,
    after: Option<(DateTime<Utc>, i64)>,
    limit: u64,
) -> Result<Vec<calls::Model>, DbErr> {
    let (all, key, order, later) = match part {
        Section::Open => (CallState::OPEN.to_vec(), "due_at", "ASC", ">"),
        Section::Closed => (CallState::ALL.into_iter().filter(|s| !s.is_open()).collect(), CLOSED_AT, "DESC", "<"),
    };
    // The part's whole state list is the condition, as written in its partial index, so both
    // databases see that the index covers the query; a narrower filter is added beside it.
    let mut sql = format!("SELECT * FROM calls WHERE state IN ({})", state_list(&all));
    if states.len() < all.len() {
        sql.push_str(&format!(" AND state IN ({})", state_list(states)));
    }
    let mut values: Vec<sea_orm::Value> = vec![];
    if let Some(rep) = rep {
        values.push(rep.into());
        sql.push_str(&format!(" AND rep_email = ${}", values.len()));
    }
    if let Some((at, id)) = after {
        values.push(at.into());
        values.push(id.into());
        let (t, i) = (values.len() - 1, values.len());
        // A row comparison; the bound on the key alone lets SQLite, too, start the index scan at
        // the position (on the expression index of closed calls, it would read from the top).
        sql.push_str(&format!(" AND {key} {later}= ${t} AND ({key}, id) {later} (${t}, ${i})"));
    }
    values.push((limit.min(i64::MAX as u64) as i64).into());
    sql.push_str(&format!(" ORDER BY {key} {order}, id {order} LIMIT ${}", values.len()));
    calls::Entity::find().from_raw_sql(crate::db::stmt(db.get_database_backend(), &sql, values)).all(db).await
}

/// One call with every email about it and its pending timers.
pub struct CallRecord {
    pub call: calls::Model,
    pub emails: Vec<emails::Model>,
    pub timers: Vec<jobs::Model>,
}

/// The call with its emails and timers, or `None` when no call has that id.
pub async fn call_record(db: &impl ConnectionTrait, id: i64) -> Result<Option<CallRecord>, DbErr> {
    let Some(call) = calls::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    let emails = emails::Entity::find().filter(emails::Column::CallId.eq(id)).order_by_asc(emails::Column::Id).all(db).await?;
    // The first-call workflow's jobs are about its calls.
    let timers = jobs::Entity::find()
        .filter(jobs::Column::SubjectId.eq(id))
        .filter(jobs::Column::Kind.is_in(super::FirstCall::JOB_KINDS))
        .order_by_asc(jobs::Column::RunAt)
        .all(db)
        .await?;
    Ok(Some(CallRecord { call, emails, timers }))
}

/// Rows a count reads at most on a page load: exact up to here; past it, an estimate.
pub const COUNTED: i64 = 10_000;

/// How far a [`Count`] can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Accuracy {
    Exact,
    /// The planner's estimate (PostgreSQL's statistics, refreshed by autovacuum's ANALYZE).
    Estimate,
    /// At least this many: past [`COUNTED`] with nothing better known.
    AtLeast,
}

/// A count as a page shows it: exact up to [`COUNTED`] calls; above, an estimate or a floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub n: i64,
    pub accuracy: Accuracy,
}

impl Count {
    /// `1,234`; `about 1,000,000` for an estimate; `10,000+` for a floor.
    pub fn label(&self) -> String {
        let digits = self.n.unsigned_abs().to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        match self.accuracy {
            Accuracy::Exact => grouped,
            Accuracy::Estimate => format!("about {grouped}"),
            Accuracy::AtLeast => format!("{grouped}+"),
        }
    }
}

impl std::iter::Sum for Count {
    /// The total of disjoint counts, as sure as the least sure of them.
    fn sum<I: Iterator<Item = Count>>(counts: I) -> Count {
        counts.fold(Count { n: 0, accuracy: Accuracy::Exact }, |a, b| Count { n: a.n + b.n, accuracy: a.accuracy.max(b.accuracy) })
    }
}

/// The counts a page shows, in one statement: the calls in each of `states` (of one rep), and,
/// with `due_by`, the open ones due by then. Each is counted at most [`COUNTED`] deep, so the
/// cost is bounded however many calls there are; past the bound, a state's count is the
/// planner's estimate (without a rep, on PostgreSQL) or "at least", and the due count "at least".
pub async fn count_calls(
    db: &impl ConnectionTrait,
    states: &[CallState],
    rep: Option<&EmailAddress>,
    due_by: Option<DateTime<Utc>>,
) -> Result<(Vec<Count>, Option<Count>), DbErr> {
    let backend = db.get_database_backend();
    let mut values: Vec<sea_orm::Value> = vec![(COUNTED + 1).into()];
    let of_rep = match rep {
        Some(r) => {
            values.push(r.as_str().into());
            format!(" AND rep_email = ${}", values.len())
        }
        None => String::new(),
    };
    // Each count reads its own index range: `calls_state_due` or, for a rep, `calls_rep_state`.
    let count = |states: &[CallState], more: &str, name: &str| {
        format!("(SELECT COUNT(*) FROM (SELECT 1 FROM calls WHERE state IN ({}){of_rep}{more} LIMIT $1) c) AS {name}", state_list(states))
    };
    let mut columns: Vec<String> = states.iter().enumerate().map(|(i, s)| count(&[*s], "", &format!("n{i}"))).collect();
    if let Some(at) = due_by {
        values.push(at.into());
        columns.push(count(&CallState::OPEN, &format!(" AND due_at <= ${}", values.len()), "due_by"));
    }
    let sql = format!("SELECT {}", columns.join(", "));
    let row = db.query_one_raw(crate::db::stmt(backend, &sql, values)).await?.ok_or_else(|| DbErr::RecordNotFound("counts".into()))?;
    let mut counts = Vec::with_capacity(states.len());
    for (i, s) in states.iter().enumerate() {
        let n = row.try_get::<i64>("", &format!("n{i}"))?;
        let estimate = if n > COUNTED && rep.is_none() { estimated(db, &[*s]).await? } else { None };
        counts.push(bounded(n, estimate));
    }
    let due = match due_by {
        Some(_) => Some(bounded(row.try_get::<i64>("", "due_by")?, None)),
        None => None,
    };
    Ok((counts, due))
}

/// A count read at most [`COUNTED`] + 1 deep, as shown: exact, else the estimate if it is above
/// the bound, else "at least".
fn bounded(n: i64, estimate: Option<i64>) -> Count {
    match estimate {
        _ if n <= COUNTED => Count { n, accuracy: Accuracy::Exact },
        Some(e) if e > COUNTED => Count { n: e, accuracy: Accuracy::Estimate },
        _ => Count { n: COUNTED, accuracy: Accuracy::AtLeast },
    }
}

/// PostgreSQL's estimate of the calls in `states`: the table's row count times the states'
/// frequencies in its statistics. `None` without statistics (SQLite, or never analysed).
async fn estimated(db: &impl ConnectionTrait, states: &[CallState]) -> Result<Option<i64>, DbErr> {
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(None);
    }
    let sql = "SELECT c.reltuples::float8 AS rows, s.most_common_vals::text AS vals, s.most_common_freqs::text AS freqs \
               FROM pg_class c LEFT JOIN pg_stats s ON s.schemaname = current_schema() AND s.tablename = 'calls' AND s.attname = 'state' \
               WHERE c.oid = 'calls'::regclass";
    let Some(row) = db.query_one_raw(crate::db::stmt(sea_orm::DbBackend::Postgres, sql, vec![])).await? else { return Ok(None) };
    let rows: f64 = row.try_get("", "rows")?;
    let (Some(vals), Some(freqs)) = (row.try_get::<Option<String>>("", "vals")?, row.try_get::<Option<String>>("", "freqs")?) else {
        return Ok(None);
    };
    let list = |t: &str| t.trim_matches(|c| c == '{' || c == '}').split(',').map(|v| v.trim_matches('"').to_string()).collect::<Vec<_>>();
    let share: f64 = list(&vals)
        .iter()
        .zip(list(&freqs))
        .filter(|(v, _)| states.iter().any(|s| s.as_str() == v.as_str()))
        .filter_map(|(_, f)| f.parse::<f64>().ok())
        .sum();
    Ok((rows > 0.0).then(|| (rows * share).round() as i64))
}

/// The reps who have calls, as the dashboard's rep filter offers them (the first
/// [`RepChoices::LISTED`]), read again once [`RepChoices::FRESH_FOR`] has passed on the
/// process's clock. Reading them is a step of an index per rep, the largest statement of a
/// dashboard load with hundreds of reps, and the list seldom changes.
#[derive(Default)]
pub struct RepChoices {
    /// When the list was read, and the list.
    read: std::sync::Mutex<Option<ReadAt>>,
}

type ReadAt = (DateTime<Utc>, std::sync::Arc<Vec<String>>);

impl RepChoices {
    /// How long a list read stays in use: a rep's first call shows in the filter within this.
    pub const FRESH_FOR: chrono::TimeDelta = chrono::TimeDelta::seconds(10);
    /// Reps offered at most.
    pub const LISTED: i64 = 1000;

    pub async fn get(&self, db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<std::sync::Arc<Vec<String>>, DbErr> {
        if let Some((at, reps)) = self.read.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
            && (*at..*at + Self::FRESH_FOR).contains(&now)
        {
            return Ok(reps.clone());
        }
        let reps = std::sync::Arc::new(reps_with_calls(db, Self::LISTED).await?);
        *self.read.lock().unwrap_or_else(|e| e.into_inner()) = Some((now, reps.clone()));
        Ok(reps)
    }
}

/// The reps who have calls, in order, at most `limit`: one step of the `calls_rep_state` index
/// per rep (a skip scan), not a pass over every call.
pub async fn reps_with_calls(db: &impl ConnectionTrait, limit: i64) -> Result<Vec<String>, DbErr> {
    let sql = "WITH RECURSIVE r(rep) AS ( \
                 SELECT MIN(rep_email) FROM calls \
                 UNION ALL \
                 SELECT (SELECT MIN(rep_email) FROM calls WHERE rep_email > r.rep) FROM r WHERE r.rep IS NOT NULL) \
               SELECT rep FROM r WHERE rep IS NOT NULL LIMIT $1";
    let rows = db.query_all_raw(crate::db::stmt(db.get_database_backend(), sql, vec![limit.into()])).await?;
    rows.iter().map(|r| r.try_get::<String>("", "rep")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_exact_estimated_or_at_least() {
        let c = |n, accuracy| Count { n, accuracy };
        let exact = [0, 999, 1_000, 10_000].map(|n| c(n, Accuracy::Exact).label());
        assert_eq!(exact, ["0", "999", "1,000", "10,000"]);
        assert_eq!(c(1_234_567, Accuracy::Estimate).label(), "about 1,234,567");
        assert_eq!(c(COUNTED, Accuracy::AtLeast).label(), "10,000+");
        // A total is as sure as its least sure part.
        let total: Count = [c(3, Accuracy::Exact), c(COUNTED, Accuracy::AtLeast), c(20_000, Accuracy::Estimate)].into_iter().sum();
        assert_eq!(total.label(), "30,003+");
        let total: Count = [c(3, Accuracy::Exact), c(20_000, Accuracy::Estimate)].into_iter().sum();
        assert_eq!(total.label(), "about 20,003");
    }
}
