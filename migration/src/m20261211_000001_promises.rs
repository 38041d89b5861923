//! The promise ledger: when a first call is marked done, each commitment of the deal's newest
//! proposal becomes a promise with an owner, a date and a state, followed by its own timers.
//! Emails about a promise name it (`emails.promise_id`), so one whose promise closed meanwhile
//! is not sent; a commitment may name its owner (`proposal_commitments.owner_email`). Once a
//! call's promises are delivered, a check-in (`check_ins`) asks the customer how it went.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn name(s: &str) -> Alias {
    Alias::new(s)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(name("promises"))
                    .col(big_integer(name("id")).auto_increment().primary_key())
                    .col(big_integer(name("call_id")))
                    .col(text(name("source")))
                    .col(text(name("deal_id")))
                    .col(integer(name("position")))
                    .col(text_null(name("commitment_id")))
                    .col(text(name("text")))
                    .col(json(name("covers")))
                    .col(date_null(name("need_by")))
                    .col(boolean(name("must_have")))
                    .col(text(name("owner_email")))
                    .col(date_null(name("deliver_by")))
                    .col(date_null(name("agreed_deliver_by")))
                    .col(text(name("state")))
                    .col(text_null(name("reason")))
                    .col(integer(name("reminders_sent")).default(0))
                    .col(integer(name("overdue_reminders")).default(0))
                    .col(integer(name("escalation_level")).default(0))
                    .col(text_null(name("escalated_steps")))
                    .col(timestamp_with_time_zone(name("created_at")))
                    .col(timestamp_with_time_zone(name("updated_at")))
                    .col(timestamp_with_time_zone_null(name("closed_at")))
                    .to_owned(),
            )
            .await?;
        for (index, cols) in [
            ("promises_call", &["call_id", "position"][..]),
            ("promises_state_deliver_by", &["state", "deliver_by"][..]),
            ("promises_owner_state", &["owner_email", "state"][..]),
        ] {
            let mut create = Index::create();
            create.name(index).table(name("promises"));
            for c in cols {
                create.col(name(c));
            }
            manager.create_index(create.to_owned()).await?;
        }
        // One check-in per call, once its promises are delivered: when it is due, when it was
        // sent, and the customer's answer as the rep recorded it.
        manager
            .create_table(
                Table::create()
                    .table(name("check_ins"))
                    .col(big_integer(name("id")).auto_increment().primary_key())
                    .col(big_integer(name("call_id")).unique_key())
                    .col(timestamp_with_time_zone(name("due_at")))
                    .col(timestamp_with_time_zone_null(name("sent_at")))
                    .col(text_null(name("answer")))
                    .col(text_null(name("note")))
                    .col(text_null(name("answered_by")))
                    .col(timestamp_with_time_zone_null(name("answered_at")))
                    .col(timestamp_with_time_zone(name("created_at")))
                    .col(timestamp_with_time_zone(name("updated_at")))
                    .to_owned(),
            )
            .await?;
        manager.alter_table(Table::alter().table(name("emails")).add_column(big_integer_null(name("promise_id"))).to_owned()).await?;
        manager.alter_table(Table::alter().table(name("proposal_commitments")).add_column(text_null(name("owner_email"))).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(name("proposal_commitments")).drop_column(name("owner_email")).to_owned()).await?;
        manager.alter_table(Table::alter().table(name("emails")).drop_column(name("promise_id")).to_owned()).await?;
        manager.drop_table(Table::drop().table(name("check_ins")).to_owned()).await?;
        manager.drop_table(Table::drop().table(name("promises")).to_owned()).await
    }
}
