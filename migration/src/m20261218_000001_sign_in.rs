//! Sign-in per person: one-time links sent by email (`sign_in_links`, named by the SHA-256 of
//! the link's secret, which only the email holds; kept a day after they expire so that the
//! number of links asked for per address and per client can be counted, and a used or expired
//! link can be told apart from a wrong one), and the person a dashboard session belongs to
//! (`sessions.person`; sessions opened with an API token have none).

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
                    .table(name("sign_in_links"))
                    .col(text(name("id")).primary_key())
                    .col(text(name("email")))
                    .col(text(name("client")))
                    .col(boolean(name("sent")))
                    .col(timestamp_with_time_zone(name("created_at")))
                    .col(timestamp_with_time_zone(name("expires_at")))
                    .col(timestamp_with_time_zone_null(name("used_at")))
                    .to_owned(),
            )
            .await?;
        for column in ["email", "client"] {
            manager
                .create_index(
                    Index::create()
                        .name(format!("sign_in_links_{column}_created_at"))
                        .table(name("sign_in_links"))
                        .col(name(column))
                        .col(name("created_at"))
                        .to_owned(),
                )
                .await?;
        }
        manager.alter_table(Table::alter().table(name("sessions")).add_column(text_null(name("person"))).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(name("sessions")).drop_column(name("person")).to_owned()).await?;
        manager.drop_table(Table::drop().table(name("sign_in_links")).to_owned()).await
    }
}
