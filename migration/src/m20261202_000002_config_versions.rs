//! The configurations processes run: each version (a hash of the schedules as written and the
//! templates) with its schedules and its templates' digest, and each load of one, when and by
//! which process.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("config_versions"))
                    .col(ColumnDef::new(Alias::new("version")).text().not_null().primary_key())
                    .col(ColumnDef::new(Alias::new("schedules")).text().not_null())
                    .col(ColumnDef::new(Alias::new("templates_digest")).text().not_null())
                    .col(timestamp_with_time_zone(Alias::new("first_loaded_at")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("config_loads"))
                    .col(big_pk_auto(Alias::new("id")))
                    .col(ColumnDef::new(Alias::new("version")).text().not_null())
                    .col(ColumnDef::new(Alias::new("instance_id")).text().not_null())
                    .col(ColumnDef::new(Alias::new("role")).text().not_null())
                    .col(timestamp_with_time_zone(Alias::new("loaded_at")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("config_loads_loaded_at").table(Alias::new("config_loads")).col(Alias::new("loaded_at")).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Alias::new("config_loads")).to_owned()).await?;
        manager.drop_table(Table::drop().table(Alias::new("config_versions")).to_owned()).await
    }
}
