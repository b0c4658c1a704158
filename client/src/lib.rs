//! A client for vledger's HTTP API.
