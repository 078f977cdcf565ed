//! `FjallStore`: the production `Storage` on fjall 3 (being written).
