//! The native client (being written).
