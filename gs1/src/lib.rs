//! GS1 parsing (being written).
