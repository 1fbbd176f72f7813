//! What the attribute macros share in reading their input: the attribute's
//! arguments and the item are checked together, and a mistake in the
//! arguments skips to the next one.

use proc_macro2::{TokenStream, TokenTree};
use syn::Token;
use syn::parse::ParseStream;

use crate::errors::Errors;

/// The arguments and the item, or every error either had.
pub(crate) fn both<A, I>(
    errors: Errors,
    args: syn::Result<A>,
    item: syn::Result<I>,
) -> Result<(A, I, Errors), syn::Error> {
    match (args, item) {
        (Ok(args), Ok(item)) => Ok((args, item, errors)),
        (Ok(_), Err(error)) | (Err(error), Ok(_)) => Err(errors.fail(error)),
        (Err(args_error), Err(item_error)) => {
            let mut errors = errors;
            errors.push(args_error);
            Err(errors.fail(item_error))
        }
    }
}

/// What stands in for an item whose attribute reported errors: the item as
/// written, so the rest of the crate still sees it.
pub(crate) fn keep_item(item: TokenStream) -> TokenStream {
    item
}

/// Consumes tokens up to the next top-level `,` (or the end) and returns them.
pub(crate) fn skip_to_comma(input: ParseStream<'_>) -> syn::Result<TokenStream> {
    let mut skipped = TokenStream::new();
    while !input.is_empty() && !input.peek(Token![,]) {
        skipped.extend([input.parse::<TokenTree>()?]);
    }
    Ok(skipped)
}
