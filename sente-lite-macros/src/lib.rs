//! Procedural macros of sente-lite.
use proc_macro::TokenStream;

/// Placeholder until the macro crate lands.
#[proc_macro_attribute]
pub fn event(_a: TokenStream, i: TokenStream) -> TokenStream { i }
/// Placeholder until the macro crate lands.
#[proc_macro_attribute]
pub fn handler(_a: TokenStream, i: TokenStream) -> TokenStream { i }
