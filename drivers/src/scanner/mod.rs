//! Scanner driver (being written).
