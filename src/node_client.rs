//! Empty: the CLI reads nodes through `vledger_client::Client`. This module only remains until
//! its `mod` line leaves `main.rs`, after which this file goes too.
