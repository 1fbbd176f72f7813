//! Collects every error found in one macro input, so that all of them are reported at once.

use std::fmt::Display;

use proc_macro2::Span;
use quote::ToTokens;

/// The errors found so far while checking one `#[event]` or `#[handler]` input.
///
/// Checks push into it and go on, so the user sees every mistake in one build
/// instead of one per build; [`Errors::finish`] turns them into one `syn::Error`.
#[derive(Default)]
pub(crate) struct Errors {
    combined: Option<syn::Error>,
}

impl Errors {
    /// Records an error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.combined {
            Some(combined) => combined.combine(error),
            None => self.combined = Some(error),
        }
    }

    /// Records an error spanning the tokens the user wrote.
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error at one span.
    pub(crate) fn at(&mut self, span: Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    /// Records a last error, one that stops the checks, and returns every recorded error.
    pub(crate) fn fail(mut self, error: syn::Error) -> syn::Error {
        self.push(error);
        match self.combined {
            Some(combined) => combined,
            None => unreachable!("an error was just recorded"),
        }
    }

    /// `Ok` when nothing was recorded, otherwise every recorded error.
    pub(crate) fn finish(self) -> syn::Result<()> {
        self.combined.map_or(Ok(()), Err)
    }
}
