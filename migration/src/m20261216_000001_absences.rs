//! Out of office: a rep's absences in the rep directory (`rep_absences`: the first and last day
//! away, in the rep's timezone, and who covers). Emails to a rep who is away go to the delegate
//! with the rep in copy (`emails.cc_addr`, `emails.cc_name`); a call opened while its rep is away
//! is planned on the delegate's clock (`calls.covered_by`).

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
                    .table(name("rep_absences"))
                    .col(big_integer(name("id")).auto_increment().primary_key())
                    .col(text(name("rep_email")))
                    .col(date(name("first_day")))
                    .col(date(name("last_day")))
                    .col(text(name("delegate_email")))
                    .col(text_null(name("reason")))
                    .col(text(name("created_by")))
                    .col(timestamp_with_time_zone(name("created_at")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("rep_absences_rep_last_day")
                    .table(name("rep_absences"))
                    .col(name("rep_email"))
                    .col(name("last_day"))
                    .to_owned(),
            )
            .await?;
        manager.alter_table(Table::alter().table(name("calls")).add_column(text_null(name("covered_by"))).to_owned()).await?;
        manager.alter_table(Table::alter().table(name("emails")).add_column(text_null(name("cc_addr"))).to_owned()).await?;
        manager.alter_table(Table::alter().table(name("emails")).add_column(text_null(name("cc_name"))).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in [("emails", "cc_name"), ("emails", "cc_addr"), ("calls", "covered_by")] {
            manager.alter_table(Table::alter().table(name(table)).drop_column(name(column)).to_owned()).await?;
        }
        manager.drop_table(Table::drop().table(name("rep_absences")).to_owned()).await
    }
}
