//! The embedded store's connections: opening the database, the read connection for the
//! request path, the blocking pool and the writer thread for everything else, and closing.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, Transaction};

use super::sql::DbResult;
use super::writer::Writer;
use super::{DB_COMPANIONS, DB_FILE, EmbeddedStore, schema};
use crate::store::{StoreError, StoreResult};

/// How long a statement waits for another connection (the CLI, the service) to release a lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Room for every distinct statement the store runs, so none is ever prepared twice.
const STATEMENT_CACHE: usize = 64;

/// How long a read on the request path may wait for a lock before it is handed to a blocking
/// thread instead (in WAL mode readers wait only in rare moments such as recovery).
const READ_BUSY_TIMEOUT: Duration = Duration::from_millis(20);

/// A connection behind a mutex; `None` once closed.
pub(super) type Shared = Arc<Mutex<Option<Connection>>>;

impl EmbeddedStore {
    /// Opens (creating if missing) the database in `dir`, and creates or migrates its schema in
    /// one transaction. Blocking; call it at start-up or from a blocking thread.
    pub fn open(dir: &Path) -> Result<EmbeddedStore, StoreError> {
        // The data directory 0700 and the database 0600, whatever the umask; SQLite gives the
        // -wal and -shm files it creates the database file's mode.
        let db = dir.join(DB_FILE);
        crate::files::private_dir(dir)
            .and_then(|()| crate::files::private_file(&db))
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot set up the data directory {}: {e}",
                    dir.display()
                ))
            })?;
        let mut conn = Connection::open(&db).db()?;
        conn.busy_timeout(BUSY_TIMEOUT).db()?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .db()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Internal(format!(
                "SQLite refused WAL journal mode (got {mode})"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL").db()?;
        // Those an older build left readable by others.
        crate::files::restrict_files(dir, &DB_COMPANIONS);
        schema::migrate(&mut conn)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let reader = open_reader(&db)?;
        EmbeddedStore::with(conn, Some(reader))
    }

    /// A private in-memory database with the same schema, gone when the store is dropped.
    pub fn open_in_memory() -> Result<EmbeddedStore, StoreError> {
        let mut conn = Connection::open_in_memory().db()?;
        schema::migrate(&mut conn)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        EmbeddedStore::with(conn, None)
    }

    fn with(conn: Connection, reader: Option<Connection>) -> Result<EmbeddedStore, StoreError> {
        let conn = Arc::new(Mutex::new(Some(conn)));
        Ok(EmbeddedStore {
            writer: Writer::start(Arc::clone(&conn))?,
            conn,
            reader: reader.map(|reader| Arc::new(Mutex::new(Some(reader)))),
        })
    }

    /// Runs `work` on the blocking pool with the connection locked.
    pub(super) async fn run<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || with_connection(&conn, work))
            .await
            .map_err(|e| StoreError::Internal(format!("database task failed: {e}")))
            .and_then(|result| result);
        crate::store::record_operation("embedded", started, &result);
        result
    }

    /// Runs a point read on the read connection, in place; on the blocking pool when there is
    /// no read connection (in memory) or a lock held it up.
    pub(super) async fn read<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> StoreResult<T> + Send + 'static,
    {
        if let Some(reader) = &self.reader {
            let started = std::time::Instant::now();
            let result = with_connection(reader, |conn| work(conn));
            if !matches!(result, Err(StoreError::Unavailable(_))) {
                crate::store::record_operation("embedded", started, &result);
                return result;
            }
        }
        self.run(move |conn| work(conn)).await
    }

    /// Runs `work` in a write transaction, committed with others queued at the same moment
    /// (see [`writer`]); its changes stand only if it succeeds.
    pub(super) async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        let started = std::time::Instant::now();
        let result = self.writer.write(work).await;
        crate::store::record_operation("embedded", started, &result);
        result
    }

    /// Closes the read connection, then the write connection (see [`Store::close`]).
    pub(super) async fn close_connections(&self) -> StoreResult<()> {
        if let Some(reader) = &self.reader
            && let Ok(mut guard) = reader.lock()
        {
            // Read-only: nothing to flush, and it must be gone before the writer closes, since
            // only the last connection to close folds the log back into the file.
            drop(guard.take());
        }
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| {
                StoreError::Internal("the database connection's lock is poisoned".to_owned())
            })?;
            let Some(open) = guard.take() else {
                return Ok(());
            };
            // Closing the last connection checkpoints the write-ahead log into the database
            // file, so a copy of the file alone is then a complete backup.
            open.close().map_err(|(open, error)| {
                *guard = Some(open);
                StoreError::Internal(format!("closing the database failed: {error}"))
            })
        })
        .await
        .map_err(|e| StoreError::Internal(format!("database task failed: {e}")))?
    }
}

/// Runs `work` with the connection of `shared` locked, if it is still open.
pub(super) fn with_connection<T>(
    shared: &Shared,
    work: impl FnOnce(&mut Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    let mut guard = shared.lock().map_err(|_| {
        StoreError::Internal("the database connection's lock is poisoned".to_owned())
    })?;
    let conn = guard
        .as_mut()
        .ok_or_else(|| StoreError::Unavailable("the store is closed".to_owned()))?;
    work(conn)
}

/// The read-only connection for point reads (see [`EmbeddedStore`]).
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    use rusqlite::OpenFlags;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .db()?;
    conn.busy_timeout(READ_BUSY_TIMEOUT).db()?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}
