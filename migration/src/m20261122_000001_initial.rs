//! The whole domain in one initial schema: reps, versioned proposals with their parts, orders,
//! raw webhook events, first calls, durable jobs, the email outbox and the audit trail.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Reps::Table)
                    .col(string(Reps::Email).primary_key())
                    .col(string(Reps::Name))
                    .col(string(Reps::Timezone))
                    .col(string_null(Reps::ManagerEmail))
                    .col(timestamp_with_time_zone(Reps::CreatedAt))
                    .col(timestamp_with_time_zone(Reps::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        // A rep's user ids in each CRM, so an order naming only the CRM owner finds its rep.
        manager
            .create_table(
                Table::create()
                    .table(RepCrmIds::Table)
                    .col(string(RepCrmIds::Source))
                    .col(string(RepCrmIds::CrmUserId))
                    .col(string(RepCrmIds::RepEmail))
                    .primary_key(Index::create().col(RepCrmIds::Source).col(RepCrmIds::CrmUserId))
                    .foreign_key(
                        ForeignKey::create()
                            .from(RepCrmIds::Table, RepCrmIds::RepEmail)
                            .to(Reps::Table, Reps::Email)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, "rep_crm_ids_rep", RepCrmIds::Table, &[RepCrmIds::RepEmail]).await?;

        manager
            .create_table(
                Table::create()
                    .table(Proposals::Table)
                    .col(big_pk_auto(Proposals::Id))
                    .col(string(Proposals::Source))
                    .col(string(Proposals::DealId))
                    .col(integer(Proposals::Version))
                    .col(string(Proposals::BodySha256))
                    .col(json(Proposals::Body))
                    .col(string(Proposals::AccountName))
                    .col(string_null(Proposals::RepEmail))
                    .col(timestamp_with_time_zone(Proposals::ReceivedAt))
                    .to_owned(),
            )
            .await?;
        unique_index(manager, "proposals_deal_version", Proposals::Table, &[Proposals::Source, Proposals::DealId, Proposals::Version])
            .await?;

        manager
            .create_table(
                child_table(ProposalContacts::Table, ProposalContacts::ProposalId)
                    .col(string(ProposalContacts::Name))
                    .col(string_null(ProposalContacts::Email))
                    .col(string_null(ProposalContacts::Title))
                    .col(string(ProposalContacts::Role))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                child_table(ProposalRequirements::Table, ProposalRequirements::ProposalId)
                    .col(string(ProposalRequirements::ExtId))
                    .col(text(ProposalRequirements::Text))
                    .col(string(ProposalRequirements::Priority))
                    .col(date_null(ProposalRequirements::NeedBy))
                    .col(text_null(ProposalRequirements::StatedIn))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                child_table(ProposalCommitments::Table, ProposalCommitments::ProposalId)
                    .col(string(ProposalCommitments::ExtId))
                    .col(text(ProposalCommitments::Text))
                    .col(json(ProposalCommitments::Covers))
                    .col(date_null(ProposalCommitments::DeliverBy))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                child_table(ProposalLineItems::Table, ProposalLineItems::ProposalId)
                    .col(string(ProposalLineItems::Sku))
                    .col(string(ProposalLineItems::Name))
                    .col(double(ProposalLineItems::Quantity))
                    .col(big_integer(ProposalLineItems::UnitPriceMinor))
                    .col(string(ProposalLineItems::Currency))
                    .col(text_null(ProposalLineItems::Rationale))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                child_table(ProposalActivities::Table, ProposalActivities::ProposalId)
                    .col(timestamp_with_time_zone(ProposalActivities::OccurredAt))
                    .col(string(ProposalActivities::Kind))
                    .col(text(ProposalActivities::Summary))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Orders::Table)
                    .col(big_pk_auto(Orders::Id))
                    .col(string(Orders::Source))
                    .col(string(Orders::DealId))
                    .col(string(Orders::Status))
                    .col(big_integer_null(Orders::AmountMinor))
                    .col(string_null(Orders::Currency))
                    .col(string_null(Orders::RepEmail))
                    .col(string_null(Orders::Segment))
                    .col(string_null(Orders::AccountName))
                    .col(json(Orders::LineItems))
                    .col(timestamp_with_time_zone_null(Orders::OrderedAt))
                    .col(timestamp_with_time_zone(Orders::StatusAt))
                    .col(timestamp_with_time_zone(Orders::LastEventAt))
                    .col(timestamp_with_time_zone(Orders::CreatedAt))
                    .col(timestamp_with_time_zone(Orders::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        unique_index(manager, "orders_deal", Orders::Table, &[Orders::Source, Orders::DealId]).await?;

        manager
            .create_table(
                Table::create()
                    .table(WebhookEvents::Table)
                    .col(big_pk_auto(WebhookEvents::Id))
                    .col(string(WebhookEvents::Source))
                    .col(string(WebhookEvents::DedupeKey))
                    .col(string(WebhookEvents::EventType))
                    .col(string_null(WebhookEvents::DealId))
                    .col(timestamp_with_time_zone_null(WebhookEvents::OccurredAt))
                    .col(timestamp_with_time_zone(WebhookEvents::ReceivedAt))
                    .col(text(WebhookEvents::Payload))
                    .col(string(WebhookEvents::Outcome))
                    .col(big_integer_null(WebhookEvents::OrderId))
                    .to_owned(),
            )
            .await?;
        unique_index(manager, "webhook_events_dedupe", WebhookEvents::Table, &[WebhookEvents::Source, WebhookEvents::DedupeKey]).await?;

        manager
            .create_table(
                Table::create()
                    .table(Calls::Table)
                    .col(big_pk_auto(Calls::Id))
                    .col(big_integer(Calls::OrderId))
                    .col(string(Calls::Source))
                    .col(string(Calls::DealId))
                    .col(string(Calls::RepEmail))
                    .col(string(Calls::State))
                    .col(string(Calls::ScheduleName))
                    .col(timestamp_with_time_zone(Calls::OrderedAt))
                    .col(timestamp_with_time_zone(Calls::DueAt))
                    .col(integer(Calls::InviteSequence))
                    .col(integer(Calls::RemindersSent))
                    .col(integer(Calls::EscalationLevel))
                    .col(timestamp_with_time_zone_null(Calls::LastReminderAt))
                    .col(string_null(Calls::Outcome))
                    .col(text_null(Calls::Notes))
                    .col(timestamp_with_time_zone_null(Calls::CompletedAt))
                    .col(string_null(Calls::CompletedBy))
                    .col(timestamp_with_time_zone_null(Calls::CancelledAt))
                    .col(timestamp_with_time_zone(Calls::CreatedAt))
                    .col(timestamp_with_time_zone(Calls::UpdatedAt))
                    .foreign_key(ForeignKey::create().from(Calls::Table, Calls::OrderId).to(Orders::Table, Orders::Id))
                    .to_owned(),
            )
            .await?;
        index(manager, "calls_state_due", Calls::Table, &[Calls::State, Calls::DueAt]).await?;
        index(manager, "calls_order", Calls::Table, &[Calls::OrderId]).await?;
        index(manager, "calls_rep", Calls::Table, &[Calls::RepEmail]).await?;
        index(manager, "calls_deal", Calls::Table, &[Calls::Source, Calls::DealId]).await?;

        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .col(big_pk_auto(Jobs::Id))
                    .col(string(Jobs::Kind))
                    .col(big_integer_null(Jobs::CallId))
                    .col(json_null(Jobs::Payload))
                    .col(timestamp_with_time_zone(Jobs::RunAt))
                    .col(string(Jobs::State))
                    .col(integer(Jobs::Attempts))
                    .col(integer(Jobs::MaxAttempts))
                    .col(string_null(Jobs::LeaseOwner))
                    .col(string_null(Jobs::LeaseToken))
                    .col(timestamp_with_time_zone_null(Jobs::LeaseUntil))
                    .col(text_null(Jobs::LastError))
                    .col(timestamp_with_time_zone(Jobs::CreatedAt))
                    .col(timestamp_with_time_zone(Jobs::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // The claim query scans pending jobs by run_at; a partial index keeps it small when
        // dead jobs pile up. Valid SQL on both PostgreSQL and SQLite.
        let db = manager.get_connection();
        db.execute_unprepared("CREATE INDEX jobs_due ON jobs (run_at) WHERE state = 'pending'").await?;
        index(manager, "jobs_call", Jobs::Table, &[Jobs::CallId]).await?;
        index(manager, "jobs_state", Jobs::Table, &[Jobs::State]).await?;

        manager
            .create_table(
                Table::create()
                    .table(Emails::Table)
                    .col(big_pk_auto(Emails::Id))
                    .col(string(Emails::MessageId))
                    .col(big_integer_null(Emails::CallId))
                    .col(string(Emails::Kind))
                    .col(string(Emails::ToAddr))
                    .col(string_null(Emails::ToName))
                    .col(text(Emails::Subject))
                    .col(text(Emails::BodyText))
                    .col(text(Emails::BodyHtml))
                    .col(text_null(Emails::Ics))
                    .col(string_null(Emails::IcsMethod))
                    .col(string(Emails::State))
                    .col(integer(Emails::Attempts))
                    .col(integer(Emails::UnknownOutcomes))
                    .col(timestamp_with_time_zone(Emails::NextAttemptAt))
                    .col(string_null(Emails::LeaseOwner))
                    .col(string_null(Emails::LeaseToken))
                    .col(timestamp_with_time_zone_null(Emails::LeaseUntil))
                    .col(text_null(Emails::LastError))
                    .col(timestamp_with_time_zone_null(Emails::SentAt))
                    .col(timestamp_with_time_zone(Emails::CreatedAt))
                    .col(timestamp_with_time_zone(Emails::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        unique_index(manager, "emails_message_id", Emails::Table, &[Emails::MessageId]).await?;
        db.execute_unprepared("CREATE INDEX emails_due ON emails (next_attempt_at) WHERE state = 'pending'").await?;
        index(manager, "emails_call", Emails::Table, &[Emails::CallId]).await?;
        index(manager, "emails_state", Emails::Table, &[Emails::State]).await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(big_pk_auto(AuditLog::Id))
                    .col(timestamp_with_time_zone(AuditLog::At))
                    .col(string(AuditLog::Actor))
                    .col(string(AuditLog::Entity))
                    .col(big_integer(AuditLog::EntityId))
                    .col(string(AuditLog::Action))
                    .col(string_null(AuditLog::FromState))
                    .col(string_null(AuditLog::ToState))
                    .col(json_null(AuditLog::Detail))
                    .to_owned(),
            )
            .await?;
        index(manager, "audit_entity", AuditLog::Table, &[AuditLog::Entity, AuditLog::EntityId]).await?;

        manager
            .create_table(
                Table::create()
                    .table(KvStore::Table)
                    .col(string(KvStore::Key).primary_key())
                    .col(text(KvStore::Value))
                    .col(timestamp_with_time_zone(KvStore::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            KvStore::Table.into_iden(),
            AuditLog::Table.into_iden(),
            Emails::Table.into_iden(),
            Jobs::Table.into_iden(),
            Calls::Table.into_iden(),
            WebhookEvents::Table.into_iden(),
            Orders::Table.into_iden(),
            ProposalActivities::Table.into_iden(),
            ProposalLineItems::Table.into_iden(),
            ProposalCommitments::Table.into_iden(),
            ProposalRequirements::Table.into_iden(),
            ProposalContacts::Table.into_iden(),
            Proposals::Table.into_iden(),
            RepCrmIds::Table.into_iden(),
            Reps::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

/// A table holding one part of a proposal version: id, owning proposal, position in the list.
fn child_table<T: IntoIden + Copy + 'static, C: IntoIden + Copy + 'static>(table: T, proposal_id: C) -> TableCreateStatement {
    let mut t = Table::create();
    t.table(table).col(big_pk_auto(Alias::new("id"))).col(big_integer(proposal_id)).col(integer(Alias::new("position"))).foreign_key(
        ForeignKey::create().from(table, proposal_id).to(Proposals::Table, Proposals::Id).on_delete(ForeignKeyAction::Cascade),
    );
    t
}

async fn index<T: IntoIden + 'static, C: IntoIden + Copy + 'static>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    cols: &[C],
) -> Result<(), DbErr> {
    let mut idx = Index::create();
    idx.name(name).table(table);
    for c in cols {
        idx.col(*c);
    }
    manager.create_index(idx.to_owned()).await
}

async fn unique_index<T: IntoIden + 'static, C: IntoIden + Copy + 'static>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    cols: &[C],
) -> Result<(), DbErr> {
    let mut idx = Index::create();
    idx.name(name).table(table).unique();
    for c in cols {
        idx.col(*c);
    }
    manager.create_index(idx.to_owned()).await
}

#[derive(DeriveIden, Clone, Copy)]
enum Reps {
    Table,
    Email,
    Name,
    Timezone,
    ManagerEmail,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Proposals {
    Table,
    Id,
    Source,
    DealId,
    Version,
    BodySha256,
    Body,
    AccountName,
    RepEmail,
    ReceivedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ProposalContacts {
    Table,
    ProposalId,
    Name,
    Email,
    Title,
    Role,
}

#[derive(DeriveIden, Clone, Copy)]
enum ProposalRequirements {
    Table,
    ProposalId,
    ExtId,
    Text,
    Priority,
    NeedBy,
    StatedIn,
}

#[derive(DeriveIden, Clone, Copy)]
enum ProposalCommitments {
    Table,
    ProposalId,
    ExtId,
    Text,
    Covers,
    DeliverBy,
}

#[derive(DeriveIden, Clone, Copy)]
enum ProposalLineItems {
    Table,
    ProposalId,
    Sku,
    Name,
    Quantity,
    UnitPriceMinor,
    Currency,
    Rationale,
}

#[derive(DeriveIden, Clone, Copy)]
enum ProposalActivities {
    Table,
    ProposalId,
    OccurredAt,
    Kind,
    Summary,
}

#[derive(DeriveIden, Clone, Copy)]
enum Orders {
    Table,
    Id,
    Source,
    DealId,
    Status,
    AmountMinor,
    Currency,
    RepEmail,
    Segment,
    AccountName,
    LineItems,
    OrderedAt,
    StatusAt,
    LastEventAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum WebhookEvents {
    Table,
    Id,
    Source,
    DedupeKey,
    EventType,
    DealId,
    OccurredAt,
    ReceivedAt,
    Payload,
    Outcome,
    OrderId,
}

#[derive(DeriveIden, Clone, Copy)]
enum Calls {
    Table,
    Id,
    OrderId,
    Source,
    DealId,
    RepEmail,
    State,
    ScheduleName,
    OrderedAt,
    DueAt,
    InviteSequence,
    RemindersSent,
    EscalationLevel,
    LastReminderAt,
    Outcome,
    Notes,
    CompletedAt,
    CompletedBy,
    CancelledAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Jobs {
    Table,
    Id,
    Kind,
    CallId,
    Payload,
    RunAt,
    State,
    Attempts,
    MaxAttempts,
    LeaseOwner,
    LeaseToken,
    LeaseUntil,
    LastError,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Emails {
    Table,
    Id,
    MessageId,
    CallId,
    Kind,
    ToAddr,
    ToName,
    Subject,
    BodyText,
    BodyHtml,
    Ics,
    IcsMethod,
    State,
    Attempts,
    UnknownOutcomes,
    NextAttemptAt,
    LeaseOwner,
    LeaseToken,
    LeaseUntil,
    LastError,
    SentAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum AuditLog {
    Table,
    Id,
    At,
    Actor,
    Entity,
    EntityId,
    Action,
    FromState,
    ToState,
    Detail,
}

#[derive(DeriveIden, Clone, Copy)]
enum KvStore {
    Table,
    Key,
    Value,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum RepCrmIds {
    Table,
    Source,
    CrmUserId,
    RepEmail,
}
