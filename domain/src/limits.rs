//! Every bound the ledger enforces, named in one place (TIGER_STYLE: put a limit on everything).

/// Largest DSSE envelope accepted, in bytes, as received on the wire: half of an entry, so that
/// with the header and the events an entry stays within [`MAX_ENTRY_BYTES`].
pub const MAX_ENVELOPE_BYTES: usize = 32 * 1024;
/// Longest client nonce, in bytes of UTF-8.
pub const MAX_NONCE_BYTES: usize = 128;
/// Shortest client nonce, in bytes of UTF-8.
pub const MIN_NONCE_BYTES: usize = 1;
/// Largest encoded events section of one entry, in bytes: what an entry of [`MAX_ENTRY_BYTES`]
/// leaves after its header and the largest envelope (32,710). A command whose events are longer
/// is refused (`entry-too-large`) before anything of it is recorded.
pub const MAX_EVENTS_BYTES: usize =
    MAX_ENTRY_BYTES - ENTRY_HEADER_BYTES - 4 - MAX_ENVELOPE_BYTES - 4;
/// Largest encoded entry, in bytes (header, envelope and events): 65,535, the most an entry
/// bundle of the C2SP tlog-tiles layout holds, since it prefixes each entry with its length as
/// a big-endian `u16`.
pub const MAX_ENTRY_BYTES: usize = vledger_tlog::tiles::MAX_BUNDLED_ENTRY_BYTES;
const _: () = assert!(
    ENTRY_HEADER_BYTES + 4 + MAX_ENVELOPE_BYTES + 4 + MAX_EVENTS_BYTES == MAX_ENTRY_BYTES,
    "the largest envelope and the largest events make the largest entry"
);
/// Fixed part of an encoded entry before the envelope bytes.
pub const ENTRY_HEADER_BYTES: usize = 1 + 8 + 8 + 32;
/// Commands that may wait for the writer before new ones are refused with 503.
pub const WRITER_QUEUE_CAPACITY: usize = 16 * 1024;
/// Most commands the writer applies and commits in one synced write batch.
pub const MAX_BATCH_COMMANDS: usize = 4096;
/// Most entries returned by one `GET /v1/entries` page.
pub const MAX_ENTRIES_PAGE: u64 = 1000;
/// Longest party display name, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 256;
/// Earliest instant a command may name (`*_ms` fields of bodies): 2000-01-01T00:00:00Z.
pub const MIN_TIMESTAMP_MS: u64 = 946_684_800_000;
/// Latest instant a command may name: 9999-12-31T23:59:59.999Z, far below 2^53.
pub const MAX_TIMESTAMP_MS: u64 = 253_402_300_799_999;
/// Longest duration a command may name (notice and confirmation periods): ten years of 366
/// days.
pub const MAX_DURATION_MS: u64 = 3660 * 86_400_000;
/// Longest region identifier, in bytes.
pub const MAX_REGION_ID_BYTES: usize = 32;
/// Longest command type name, in bytes.
pub const MAX_COMMAND_TYPE_BYTES: usize = 64;
/// Longest free-text reason attached to a command, in bytes of UTF-8.
pub const MAX_REASON_BYTES: usize = 1024;
/// Most eligible service categories one program may list.
pub const MAX_CATEGORIES: usize = 64;
/// Longest category, kind or time-zone name, in bytes.
pub const MAX_CATEGORY_BYTES: usize = 64;
/// Most regions a program may allow spending in.
pub const MAX_SPEND_REGIONS: usize = 64;
/// Most vouchers the node expires in one sweep of its expiry index.
pub const MAX_EXPIRIES_PER_SWEEP: usize = 1000;
/// Most related parties one party may declare.
pub const MAX_RELATED_PARTIES: usize = 256;
/// Most installments in one direct payment plan.
pub const MAX_INSTALLMENTS: usize = 24;
/// Most evidence documents in one delivery.
pub const MAX_EVIDENCE_ITEMS: usize = 32;
/// Longest payment or escrow reference, in bytes.
pub const MAX_REFERENCE_BYTES: usize = 128;
/// The lines of one settlement statement: a proposal's envelope (at most 32 KiB) holds them
/// with room to spare, and so do its events.
pub const MAX_STATEMENT_LINES: usize = 64;
/// The window in which orders between one enterprise and one agency count together for the
/// split-order flag: 30 days.
pub const SPLIT_ORDER_WINDOW_MS: u64 = 30 * 86_400_000;
/// Most recent orders kept per (program, enterprise, agency) for the split-order flag.
pub const MAX_RECENT_PAIR_ORDERS: usize = 64;
/// Most orders the node auto-confirms in one sweep.
pub const MAX_AUTO_CONFIRMS_PER_SWEEP: usize = 1000;
/// Most `order.release_unclaimed` commands the node's clock issues in one sweep.
pub const MAX_UNCLAIMED_RELEASES_PER_SWEEP: usize = 1000;
/// Longest title of a catalog listing or demand, in bytes of UTF-8.
pub const MAX_CATALOG_TITLE_BYTES: usize = 256;
/// Longest description of a catalog listing or demand, in bytes of UTF-8.
pub const MAX_CATALOG_DESCRIPTION_BYTES: usize = 8 * 1024;
/// Longest unit a listing's price is for (e.g. "每样品"), in bytes of UTF-8.
pub const MAX_CATALOG_UNIT_BYTES: usize = 64;
/// Most tags on one listing.
pub const MAX_CATALOG_TAGS: usize = 16;
/// Longest tag of a listing, in bytes of UTF-8.
pub const MAX_CATALOG_TAG_BYTES: usize = 64;
/// Longest industry pool name, in bytes.
pub const MAX_INDUSTRY_BYTES: usize = 32;
/// Most listings one catalog search page or match list returns.
pub const MAX_CATALOG_PAGE: usize = 100;
/// Most listings one catalog query examines; a search page cut short by it carries a cursor.
pub const MAX_CATALOG_SCAN: usize = 10_000;
/// Longest catalog search text, in characters (what the OpenAPI document's `maxLength` counts).
pub const MAX_CATALOG_QUERY_TEXT_CHARS: usize = 256;
/// Longest category a catalog search filters by, in characters: a longer one is refused, and
/// one within it but longer in bytes than any listing's category (`MAX_CATEGORY_BYTES`) matches
/// nothing.
pub const MAX_CATEGORY_FILTER_CHARS: usize = 64;

pub use vledger_tlog::limits::{
    MAX_CHECKED_KEYS, MAX_KEY_TABLES, MAX_NOTE_BYTES, MAX_NOTE_SIGNATURES, MAX_TREE_SIZE,
};

/// State records in each of the writer's two cache generations (records are a few hundred
/// bytes: some tens of MiB at most).
pub const RECORD_CACHE_GENERATION: usize = 32_768;
/// The store's RocksDB block cache, shared by every column family; index and filter blocks live
/// in it too, so that what a node holds for its table files does not grow with the log.
pub const STORE_BLOCK_CACHE_BYTES: usize = 64 << 20;
/// All memtables of the store together (RocksDB flushes the largest beyond it).
pub const STORE_MEMTABLES_BYTES: usize = 128 << 20;
/// Info logs the store keeps: each opening of the database starts one, and the node reopens it
/// after a failed write, as often as every [`STORAGE_RETRY_INTERVAL_MS`] while its disk is full.
pub const STORE_INFO_LOGS_KEPT: usize = 16;
/// While the store cannot write, how long the writer waits between attempts to reopen it (in
/// between, commands are refused at once with `storage-failure`).
pub const STORAGE_RETRY_INTERVAL_MS: u64 = 1000;

/// Longest `type` filter of `GET /v1/events`.
pub const MAX_TYPE_FILTER_BYTES: usize = 1024;

/// Most regions a federation has besides this one (adoption records read per decision that
/// looks a party up in the federation).
pub const MAX_FEDERATION_REGIONS: usize = 64;

/// Most entries of another region's log one mirror step verifies and one adoption makes
/// current: a longer way behind is caught up in steps, each ending at a checkpoint the region
/// signed.
pub const MAX_MIRROR_STEP_ENTRIES: u64 = 4096;

/// Most records one list page returns (and the default `limit`).
pub const MAX_LIST_PAGE: usize = 200;

/// Most records one list request examines before it returns a page with a cursor.
pub const MAX_LIST_SCAN: usize = 5_000;

/// Most checkpoints in one page of `GET /v1/checkpoints`.
pub const MAX_CHECKPOINTS_PAGE: usize = 1000;

/// Most fraud flags or settlement positions in one page.
pub const MAX_FLAGS_PAGE: usize = 500;

/// Fewest fraud flags in one page (a smaller `limit` is raised to it): one entry raises at most
/// this many flags.
pub const MIN_FLAGS_PAGE: usize = 256;

/// Most connections served at once, by default. Keep it below the process's limit of open
/// files, less what the store holds open.
pub const MAX_CONNECTIONS: usize = 4096;

/// Most `GET /v1/events` streams open at once, by default.
pub const MAX_EVENT_SUBSCRIBERS: usize = 1024;

/// Most connections over the connection limit (`ConnectionLimits::max_connections`) being answered 503 at once;
/// beyond it, a new connection is closed as soon as it is accepted.
pub const MAX_REFUSING_CONNECTIONS: usize = 256;

/// Longest body of an error made outside the handlers that is kept as a problem's `detail`.
pub const MAX_BARE_DETAIL_BYTES: usize = 1024;

/// Most consistency proof lines a request may carry (tlog-witness).
pub const MAX_PROOF_LINES: usize = 63;

/// Largest body of a witness's add-checkpoint request.
pub const MAX_ADD_CHECKPOINT_BYTES: usize = MAX_NOTE_BYTES + 64 * (MAX_PROOF_LINES + 1);

/// Longest line of an archive: an entry in base64 plus its JSON framing.
pub const MAX_ARCHIVE_LINE_BYTES: usize = MAX_ENTRY_BYTES * 4 / 3 + MAX_NOTE_BYTES + 1024;

/// Most failures a report lists; the rest are only counted.
pub const MAX_REPORTED_FAILURES: usize = 1000;

/// Most signature-checking threads.
pub const MAX_VERIFY_THREADS: usize = 64;

/// Most records of one kind the report reads from the replayed state.
pub const MAX_AUDIT_RECORDS: usize = 1_000_000;

/// Consecutive failed connection attempts before the stream gives up.
pub const MAX_RECONNECTS: u32 = 5;

/// Records read from the state per scan of a record list.
pub const LIST_SCAN_CHUNK: usize = 256;

/// Most settlement positions one answer lists (a pair of regions has one position in each
/// direction).
pub const MAX_SETTLEMENT_POSITIONS: usize = 500;
