//! The tenant transaction: the role row-level security binds, and the organization it admits.

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};

use super::OrgId;
use crate::domain::stmt;

/// The PostgreSQL role tenant queries run under (created by the migrations). It is neither a
/// superuser nor a table owner, so the `tenant` policies apply to it.
pub const APP_ROLE: &str = "devpulse_app";

/// Starts a transaction that can see and write only `org`'s rows: `SET LOCAL ROLE` to
/// [`APP_ROLE`] and `devpulse.organization_id` for this transaction, in one round trip. Both
/// end with the transaction, so a pooled connection carries nothing over.
pub async fn begin(db: &DatabaseConnection, org: OrgId) -> Result<DatabaseTransaction, DbErr> {
    let txn = db.begin().await?;
    txn.execute_raw(stmt(
        SET_TENANT,
        [APP_ROLE.into(), org.0.to_string().into()],
    ))
    .await?;
    Ok(txn)
}

const SET_TENANT: &str =
    "SELECT set_config('role', $1, true), set_config('devpulse.organization_id', $2, true)";

/// [`begin`] for the API's hot reads, on a tokio-postgres connection: read only, statements
/// prepared once per connection, the page's reads sent together (tokio-postgres pipelines them).
pub async fn begin_read(
    client: &mut deadpool_postgres::Client,
    org: OrgId,
) -> Result<deadpool_postgres::Transaction<'_>, tokio_postgres::Error> {
    let txn = client.build_transaction().read_only(true).start().await?;
    let set = txn.prepare_cached(SET_TENANT).await?;
    txn.execute(&set, &[&APP_ROLE, &org.0.to_string()]).await?;
    Ok(txn)
}
