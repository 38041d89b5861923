//! Reading calls for the API and the pages: the list filter and order, and one call with its
//! emails and pending timers. Read-only; the views that serialize them live with each surface.

use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};

use super::CallState;
use entity::{calls, emails, jobs};

/// The list filter as a condition: calls in any of `states` (all when empty), of one rep.
pub fn filter(states: &[CallState], rep: Option<&str>) -> Condition {
    let mut c = Condition::all();
    if !states.is_empty() {
        c = c.add(calls::Column::State.is_in(states.iter().copied()));
    }
    if let Some(r) = rep.map(str::trim).filter(|r| !r.is_empty()) {
        c = c.add(calls::Column::RepEmail.eq(r.to_lowercase()));
    }
    c
}

/// `'scheduled','due','overdue'`, from [`CallState::OPEN`], for SQL that orders by openness.
fn open_states_sql() -> String {
    CallState::OPEN.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(",")
}

/// A page of calls matching the filter and how many match in all: open ones by due time (the
/// most overdue on top), then closed ones, newest first.
pub async fn query_calls(
    db: &impl ConnectionTrait,
    states: &[CallState],
    rep: Option<&str>,
    limit: u64,
    offset: u64,
) -> Result<(Vec<calls::Model>, u64), DbErr> {
    // The database takes a signed 64-bit offset; past that there are no rows anyway (a larger
    // one used to panic in the driver and drop the connection).
    let offset = offset.min(i64::MAX as u64);
    let cond = filter(states, rep);
    let total = calls::Entity::find().filter(cond.clone()).count(db).await?;
    let open = open_states_sql();
    let open_first = sea_orm::sea_query::Expr::cust(format!("CASE WHEN state IN ({open}) THEN 0 ELSE 1 END"));
    let rows = calls::Entity::find()
        .filter(cond)
        .order_by(open_first, sea_orm::Order::Asc)
        .order_by(sea_orm::sea_query::Expr::cust(format!("CASE WHEN state IN ({open}) THEN due_at END")), sea_orm::Order::Asc)
        .order_by_desc(calls::Column::UpdatedAt)
        .order_by_desc(calls::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?;
    Ok((rows, total))
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
