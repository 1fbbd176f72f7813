//! `crate = "path"`: where the generated code finds the runtime, for a renamed
//! dependency or a facade crate that re-exports it (as `#[serde(crate = "...")]`).

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::ParseStream;
use syn::{LitStr, Path, Token};

use crate::errors::Errors;

/// The path the generated code uses to name the runtime crate.
pub(crate) struct CratePath(Option<Path>);

impl CratePath {
    /// `::sente_lite`, the runtime under its own name.
    pub(crate) fn default_path() -> Self {
        Self(None)
    }

    /// The path with every token at `span`, for code spanned on the user's
    /// tokens (`quote_spanned!`), so that errors land there.
    pub(crate) fn at(&self, span: Span) -> TokenStream {
        match &self.0 {
            Some(path) => path
                .to_token_stream()
                .into_iter()
                .map(|mut token| {
                    if !matches!(token, TokenTree::Group(_)) {
                        token.set_span(span);
                    }
                    token
                })
                .collect(),
            None => quote_spanned!(span=> ::sente_lite),
        }
    }
}

impl ToTokens for CratePath {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        match &self.0 {
            Some(path) => path.to_tokens(tokens),
            None => tokens.extend(quote!(::sente_lite)),
        }
    }
}

/// `#[diagnostic::do_not_recommend]` when the crate being compiled is
/// sente-lite itself, for the trait impls the macros generate there: the
/// library's own events and handlers (`telemetry/batch`) are then never
/// offered to a user as "other types that implement" `Event`, `OneWay` or
/// `Handler` in an error about the user's own type.
pub(crate) fn library_own() -> TokenStream {
    match std::env::var("CARGO_CRATE_NAME") {
        Ok(name) if name == "sente_lite" => quote!(#[diagnostic::do_not_recommend]),
        _ => TokenStream::new(),
    }
}

/// Whether the input continues with `crate =`.
pub(crate) fn peek(input: ParseStream<'_>) -> bool {
    input.peek(Token![crate]) && input.peek2(Token![=])
}

/// Parses `crate = "path"` into `slot`, reporting a second one or a bad path.
pub(crate) fn parse(
    input: ParseStream<'_>,
    slot: &mut CratePath,
    macro_name: &str,
    errors: &mut Errors,
) -> syn::Result<()> {
    let key: Token![crate] = input.parse()?;
    input.parse::<Token![=]>()?;
    let written: LitStr = input.parse()?;
    match written.parse::<Path>() {
        Ok(path) if slot.0.is_none() => slot.0 = Some(path),
        Ok(_) => errors.spanned(
            key,
            format!("`crate` is given twice; keep one `crate = \"path\"` in `#[{macro_name}]`"),
        ),
        Err(_) => errors.spanned(
            &written,
            "`crate` takes the path of the sente-lite crate as a string, such as `crate = \"my_facade::sente_lite\"`",
        ),
    }
    Ok(())
}
