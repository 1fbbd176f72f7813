//! `#[handler]`: parses and checks an `async fn` into a [`HandlerDef`], then renders it.

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Attribute, Block, FnArg, Ident, Item, ItemFn, Pat, PatType, ReturnType, Signature, Token, Type,
    Visibility,
};

use crate::errors::Errors;
use crate::krate::{self, CratePath};

/// What `#[handler]` was given, checked: everything the generated code needs.
pub(crate) struct HandlerDef {
    /// `#[cfg]` attributes, repeated on every generated item.
    cfg_attrs: Vec<Attribute>,
    /// Doc comments, moved onto the unit struct that replaces the function.
    doc_attrs: Vec<Attribute>,
    /// Every other attribute (`#[allow]`, `#[tracing::instrument]`, ...), kept on `run`.
    fn_attrs: Vec<Attribute>,
    /// The function's visibility, given to the struct and to `run`.
    vis: Visibility,
    /// The function's name, which becomes the unit struct's name.
    name: Ident,
    /// The parameters exactly as written, given to `run`.
    inputs: Punctuated<FnArg, Token![,]>,
    /// Which parameter is which, in the order written.
    params: Vec<ParamRole>,
    /// The event type.
    event_ty: Type,
    /// The return type as written.
    output: ReturnType,
    /// The function's body.
    block: Box<Block>,
    /// Where the generated code finds the runtime (`crate = "path"`).
    krate: CratePath,
}

/// What one parameter of the handler is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ParamRole {
    /// The `Ctx` parameter.
    Ctx,
    /// The event parameter.
    Event,
}

/// Expands `#[handler] async fn ...`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    Ok(HandlerDef::parse(args, item)?.render())
}

/// What stands in for the item when `#[handler]` reports errors: the function as
/// written, so that its body is still checked and its name still resolves, less
/// what rustc would report again (`const` with `async`, an ABI, a C variadic).
pub(crate) fn fallback(item: TokenStream) -> TokenStream {
    match syn::parse2::<ItemFn>(item.clone()) {
        Ok(mut function) => {
            function.sig.constness = None;
            function.sig.abi = None;
            function.sig.variadic = None;
            function.into_token_stream()
        }
        Err(_) => item,
    }
}

impl HandlerDef {
    /// Parses and checks the function, reporting every problem at once.
    fn parse(args: TokenStream, item: TokenStream) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let krate = (|input: ParseStream<'_>| parse_args(input, &mut errors)).parse2(args);
        let krate = match krate {
            Ok(krate) => krate,
            Err(error) => {
                errors.push(error);
                CratePath::default_path()
            }
        };
        let function = match syn::parse2::<Item>(item) {
            Ok(Item::Fn(function)) => function,
            Ok(other) => {
                return Err(errors.fail(syn::Error::new_spanned(
                    head(&other),
                    "`#[handler]` goes on an `async fn`, such as `async fn on_send(ctx: Ctx, event: ChatSend)`",
                )));
            }
            Err(error) => return Err(errors.fail(error)),
        };
        let ItemFn {
            attrs,
            vis,
            sig,
            block,
        } = function;

        check_signature(&sig, &mut errors);
        let (params, event_ty) = check_params(&sig, &mut errors);
        errors.finish()?;
        let Some(event_ty) = event_ty else {
            unreachable!("a missing event parameter was recorded as an error");
        };

        let (mut cfg_attrs, mut doc_attrs, mut fn_attrs) = (Vec::new(), Vec::new(), Vec::new());
        for attr in attrs {
            if attr.path().is_ident("doc") {
                doc_attrs.push(attr);
            } else if attr.path().is_ident("cfg") {
                cfg_attrs.push(attr);
            } else {
                fn_attrs.push(attr);
            }
        }

        Ok(Self {
            cfg_attrs,
            doc_attrs,
            fn_attrs,
            vis,
            name: sig.ident,
            inputs: sig.inputs,
            params,
            event_ty,
            output: sig.output,
            block,
            krate,
        })
    }

    /// Renders the unit struct, its `run` function, its `Handler` impl and the checks.
    fn render(&self) -> TokenStream {
        let Self {
            cfg_attrs,
            doc_attrs,
            fn_attrs,
            vis,
            name,
            inputs,
            params,
            event_ty,
            output,
            block,
            krate,
        } = self;
        let name_str = name.unraw().to_string();

        // The return type as written, or `()` spanned on the name when none is.
        let ret_ty = match output {
            ReturnType::Type(_, ty) => ty.to_token_stream(),
            ReturnType::Default => quote_spanned!(name.span()=> ()),
        };
        let ret_span = match output {
            ReturnType::Type(_, ty) => ty.span(),
            ReturnType::Default => name.span(),
        };

        let uses_ctx = params.contains(&ParamRole::Ctx);
        let ctx_param = if uses_ctx { quote!(ctx) } else { quote!(_) };
        let args = params.iter().map(|role| match role {
            ParamRole::Ctx => quote!(ctx),
            ParamRole::Event => quote!(event),
        });

        // One check, spanned on the user's own tokens: the call on the event type, so
        // the `on_unimplemented` message of `Event` lands there, and the reply type
        // argument on the return type (or on the name when none is written), so that
        // of `IntoReply` lands there. One call, so that a type that is not an event is
        // reported once, not again for its missing reply type.
        let krate_at = krate.at(ret_span);
        let reply_bound = quote_spanned! {ret_span=>
            R: #krate_at::IntoReply<<E as #krate_at::Event>::Reply>
        };
        let ret_arg = quote_spanned!(ret_span=> #ret_ty);
        let krate_at = krate.at(event_ty.span());
        let assertion = quote_spanned! {event_ty.span()=>
            fn __sente_lite_assert_handler<E: #krate_at::Event, #reply_bound>() {}
            __sente_lite_assert_handler::<#event_ty, #ret_arg>();
        };
        let check = quote! {
            #(#cfg_attrs)*
            const _: () = {
                fn __sente_lite_check() {
                    #assertion
                }
            };
        };
        // The same requirements as a `where` clause on the impl. Under `for<'a>` it is
        // not checked where it is written, so a misfit is reported once, by the check
        // above, and not again by the impl.
        let where_clause = quote! {
            where
                for<'a> #event_ty: #krate::Event,
                for<'a> #ret_ty: #krate::IntoReply<<#event_ty as #krate::Event>::Reply>,
        };
        // Spanned on the name: a future that is not `Send` is reported there.
        let krate_at = krate.at(name.span());
        let future = quote_spanned! {name.span()=>
            async move {
                <#ret_ty as #krate_at::__private::IntoReply<
                    <#event_ty as #krate_at::Event>::Reply,
                >>::into_reply(#name::run(#(#args),*).await)
            }
        };

        // Spanned on the name too: a future that is not `Send` misses this bound.
        let inline_output = quote_spanned! {name.span()=>
            impl ::core::future::Future<
                Output = ::core::result::Result<
                    ::core::option::Option<<#event_ty as #krate_at::Event>::Reply>,
                    #krate_at::ErrorReply,
                >,
            > + ::core::marker::Send + 'static
        };

        // The body runs in a function of the handler's own name nested in
        // `run`: there the name is that function's, not the unit struct's, so
        // a parameter may be named like the handler (`async fn say(say: Say)`),
        // which a pattern beside the unit struct could not be.
        let forwarded: Vec<Ident> = (0..inputs.len())
            .map(|i| format_ident!("__sente_lite_arg{i}"))
            .collect();
        let outer_inputs = inputs
            .iter()
            .zip(&forwarded)
            .map(|(input, arg)| match input {
                FnArg::Typed(typed) => {
                    let ty = &typed.ty;
                    quote!(#arg: #ty)
                }
                FnArg::Receiver(receiver) => quote!(#receiver),
            });
        let body = quote! {
            {
                async fn #name(#inputs) #output #block
                #name(#(#forwarded),*).await
            }
        };
        let own = crate::krate::library_own();
        quote! {
            #(#cfg_attrs)*
            #(#doc_attrs)*
            #[allow(non_camel_case_types)]
            #[derive(
                ::core::clone::Clone,
                ::core::marker::Copy,
                ::core::fmt::Debug,
                ::core::default::Default,
            )]
            #vis struct #name;

            #(#cfg_attrs)*
            impl #name {
                /// Runs the handler's body directly, with the parameters written on the
                /// function (for unit tests); the router calls it through `sente_lite::Handler`.
                #(#fn_attrs)*
                #vis async fn run(#(#outer_inputs),*) #output #body
            }

            #(#cfg_attrs)*
            #own
            impl #krate::Handler for #name #where_clause {
                type Event = #event_ty;
                const NAME: &'static str = #name_str;
                const MODULE: &'static str = ::core::module_path!();

                fn call(
                    &self,
                    ctx: #krate::Ctx,
                    event: #event_ty,
                ) -> #krate::HandlerFuture<<#event_ty as #krate::Event>::Reply> {
                    #krate::__private::Box::pin(
                        <Self as #krate::Handler>::call_inline(self, ctx, event),
                    )
                }

                fn call_inline(
                    &self,
                    #ctx_param: #krate::Ctx,
                    event: #event_ty,
                ) -> #inline_output {
                    #future
                }
            }

            #check
        }
    }
}

/// Parses the attribute's arguments: nothing, or `crate = "path"`.
fn parse_args(input: ParseStream<'_>, errors: &mut Errors) -> syn::Result<CratePath> {
    let mut krate = CratePath::default_path();
    while !input.is_empty() {
        if krate::peek(input) {
            krate::parse(input, &mut krate, "handler", errors)?;
        } else {
            let rest: TokenStream = input.parse()?;
            errors.spanned(
                rest,
                "`#[handler]` takes no arguments but `crate = \"path\"` (for a renamed sente-lite): the event type comes from the function's event parameter; write `#[handler]`",
            );
            break;
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(krate)
}

/// Checks everything about the signature but its parameters.
fn check_signature(sig: &Signature, errors: &mut Errors) {
    if let Some(constness) = &sig.constness {
        errors.spanned(
            constness,
            "a handler cannot be a `const fn`: remove `const` and write `async fn`",
        );
    }
    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token,
            "a handler must be an `async fn`: write `async fn` here",
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.spanned(
            unsafety,
            "a handler cannot be an `unsafe fn`: remove `unsafe`, and use an `unsafe` block inside the body if needed",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(
            abi,
            "a handler cannot have an ABI: remove this `extern`; the router calls the handler as a Rust `async fn`",
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(
            variadic,
            "a handler cannot be variadic: remove `...`; a handler takes an optional `ctx: Ctx` and one event",
        );
    }
    if let ReturnType::Type(_, ty) = &sig.output
        && let Type::ImplTrait(_) = ungroup(ty)
    {
        errors.spanned(
            ty,
            "a handler's return type cannot be `impl Trait`: name it, such as `()`, `User` or `Result<User, ErrorReply>`",
        );
    }
    if !sig.generics.params.is_empty() {
        errors.spanned(
            &sig.generics,
            "a handler cannot be generic: the router needs one concrete event type per handler; remove the generic parameters and write one handler per event type",
        );
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        errors.spanned(
            where_clause,
            "a handler cannot have a `where` clause: its parameters are a concrete `Ctx` and a concrete event type; remove it",
        );
    }
}

/// Sorts the parameters into the context and the event, recording every misfit.
fn check_params(sig: &Signature, errors: &mut Errors) -> (Vec<ParamRole>, Option<Type>) {
    let mut roles = Vec::new();
    let mut ctx: Option<&Pat> = None;
    let mut event: Option<&PatType> = None;
    // Set when a parameter that could have been the event was rejected, so that
    // "needs an event parameter" is not said on top of that error.
    let mut event_rejected = false;
    let mut typed_params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.spanned(
                receiver,
                "a handler is a free `async fn`, not a method: remove `self` and move the function out of the `impl` block",
            ),
            FnArg::Typed(typed) => typed_params.push(typed),
        }
    }
    for (index, typed) in typed_params.into_iter().enumerate() {
        if index >= 2 {
            errors.spanned(
                typed,
                "a handler takes at most two parameters, `ctx: Ctx` and one event: remove this one, or move its data into the event type",
            );
            event_rejected = true;
            continue;
        }
        let ty = ungroup(&typed.ty);
        if let Type::ImplTrait(_) = ty {
            errors.spanned(
                ty,
                "a handler parameter cannot be `impl Trait`: write the concrete event type, such as `event: ChatSend`, or `ctx: Ctx`",
            );
            event_rejected = true;
            continue;
        }
        if let Type::Reference(reference) = ty {
            if is_ctx(&reference.elem) {
                errors.spanned(
                    ty,
                    "take the context by value: write `ctx: Ctx` (a `Ctx` is a cheap handle to clone)",
                );
            } else {
                errors.spanned(
                    ty,
                    format!(
                        "take the event by value: write `{}: {}`",
                        typed.pat.to_token_stream(),
                        reference.elem.to_token_stream()
                    ),
                );
                event_rejected = true;
            }
            continue;
        }
        if is_ctx(ty) {
            match ctx {
                Some(first) => errors.spanned(
                    typed,
                    format!(
                        "the context is already passed as `{}`: remove this second `Ctx` parameter",
                        first.to_token_stream()
                    ),
                ),
                None => {
                    ctx = Some(&typed.pat);
                    roles.push(ParamRole::Ctx);
                }
            }
        } else {
            match event {
                Some(first) => errors.spanned(
                    typed,
                    format!(
                        "a handler receives exactly one event and `{}` already is this handler's event: remove this parameter or move its data into the event type (a context parameter must have the type `Ctx`)",
                        first.ty.to_token_stream()
                    ),
                ),
                None => {
                    event = Some(typed);
                    roles.push(ParamRole::Event);
                }
            }
        }
    }
    if event.is_none() && !event_rejected {
        errors.at(
            sig.paren_token.span.join(),
            "a handler needs an event parameter: write `async fn name(ctx: Ctx, event: YourEvent)` (the `ctx: Ctx` parameter may be left out)",
        );
    }
    (roles, event.map(|typed| (*typed.ty).clone()))
}

/// Whether a type names the context: its last path segment is `Ctx`.
fn is_ctx(ty: &Type) -> bool {
    match ungroup(ty) {
        Type::Path(path) => {
            path.qself.is_none()
                && path
                    .path
                    .segments
                    .last()
                    .is_some_and(|segment| segment.ident == "Ctx")
        }
        _ => false,
    }
}

/// Looks through parentheses and invisible groups around a type.
fn ungroup(ty: &Type) -> &Type {
    match ty {
        Type::Paren(inner) => ungroup(&inner.elem),
        Type::Group(inner) => ungroup(&inner.elem),
        other => other,
    }
}

/// The tokens that name an item, for the error about it not being a function.
fn head(item: &Item) -> TokenStream {
    match item {
        Item::Struct(item) => {
            let (token, ident) = (&item.struct_token, &item.ident);
            quote!(#token #ident)
        }
        Item::Enum(item) => {
            let (token, ident) = (&item.enum_token, &item.ident);
            quote!(#token #ident)
        }
        Item::Impl(item) => {
            let (token, self_ty) = (&item.impl_token, &item.self_ty);
            quote!(#token #self_ty)
        }
        Item::Trait(item) => {
            let (token, ident) = (&item.trait_token, &item.ident);
            quote!(#token #ident)
        }
        other => other.to_token_stream(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(item: TokenStream) -> Vec<String> {
        match HandlerDef::parse(TokenStream::new(), item) {
            Ok(_) => Vec::new(),
            Err(err) => err.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn accepts_both_shapes() {
        assert!(
            messages(quote!(
                async fn a(ctx: Ctx, ev: E) {}
            ))
            .is_empty()
        );
        assert!(
            messages(quote!(
                async fn a(ev: E) -> u8 {
                    1
                }
            ))
            .is_empty()
        );
        assert!(
            messages(quote!(
                pub async fn a(_: sente_lite::Ctx, E(x): E) {}
            ))
            .is_empty()
        );
    }

    #[test]
    fn reports_every_signature_error_at_once() {
        let found = messages(quote!(
            const unsafe extern "C" fn a<T>(self, c: &Ctx, x: T, y: T, z: T)
            where
                T: Copy,
            {
            }
        ));
        let starts = [
            "a handler cannot be a `const fn`",
            "a handler must be an `async fn`",
            "a handler cannot be an `unsafe fn`",
            "a handler cannot have an ABI",
            "a handler cannot be generic",
            "a handler cannot have a `where` clause",
            "a handler is a free `async fn`",
            "take the context by value",
            "a handler takes at most two parameters",
            "a handler takes at most two parameters",
        ];
        assert_eq!(found.len(), starts.len(), "{found:#?}");
        for (message, start) in found.iter().zip(starts) {
            assert!(message.starts_with(start), "{message} / {start}");
        }
    }

    #[test]
    fn recognises_the_context_by_its_last_segment() {
        assert!(is_ctx(&syn::parse_quote!(Ctx)));
        assert!(is_ctx(&syn::parse_quote!(sente_lite::Ctx)));
        assert!(is_ctx(&syn::parse_quote!(::sente_lite::Ctx)));
        assert!(!is_ctx(&syn::parse_quote!(Context)));
        assert!(!is_ctx(&syn::parse_quote!(&Ctx)));
    }
}
