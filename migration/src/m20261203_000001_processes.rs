//! The processes that run (`serve`, `worker`): which configuration version each runs, when it
//! was last seen, and the last edit of `config/` it refused and why. `load_seq` is the id of
//! its load in `config_loads`: the database's order of loads, whatever the processes' clocks.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("processes"))
                    .col(ColumnDef::new(Alias::new("instance_id")).text().not_null().primary_key())
                    .col(ColumnDef::new(Alias::new("role")).text().not_null())
                    .col(ColumnDef::new(Alias::new("version")).text().not_null())
                    .col(timestamp_with_time_zone(Alias::new("started_at")))
                    .col(timestamp_with_time_zone(Alias::new("loaded_at")))
                    .col(ColumnDef::new(Alias::new("load_seq")).big_integer().not_null())
                    .col(timestamp_with_time_zone(Alias::new("seen_at")))
                    .col(ColumnDef::new(Alias::new("refused")).text().null())
                    .col(ColumnDef::new(Alias::new("refused_at")).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(Index::create().name("processes_seen_at").table(Alias::new("processes")).col(Alias::new("seen_at")).to_owned())
            .await?;
        // Which version each process runs is compared with when that version was first loaded.
        manager
            .create_index(
                Index::create().name("config_loads_version").table(Alias::new("config_loads")).col(Alias::new("version")).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("config_loads_version").table(Alias::new("config_loads")).to_owned()).await?;
        manager.drop_table(Table::drop().table(Alias::new("processes")).to_owned()).await
    }
}
