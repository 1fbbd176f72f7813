//! `#[event]` with the `typescript` feature: records how to describe the event's
//! payload and reply in TypeScript.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{Ident, LitStr, Type};

use crate::krate::CratePath;

/// The registration of one event's TypeScript descriptions.
///
/// Each description is a plain fn that asks the runtime's `Probe` for the type:
/// autoref dispatch picks the `ts_rs::TS` description when the (concrete) type
/// implements `TS`, and "undescribed" when it does not. So an event whose types do
/// not implement `TS` still compiles, and the exporter names it instead.
pub(crate) fn record(
    id: &LitStr,
    ident: &Ident,
    reply: Option<&Type>,
    krate: &CratePath,
) -> TokenStream {
    let payload = describe_fn(
        &format_ident!("__sente_lite_ts_payload"),
        quote!(#ident),
        krate,
    );
    let reply = match reply {
        Some(reply) => {
            let describe = describe_fn(
                &format_ident!("__sente_lite_ts_reply"),
                quote!(#reply),
                krate,
            );
            quote!(::core::option::Option::Some(#describe))
        }
        None => quote!(::core::option::Option::None),
    };
    let type_name = syn::ext::IdentExt::unraw(ident).to_string();
    quote! {
        #krate::__private::inventory::submit! {
            #krate::__private::ts::TypeRecord {
                id: #id,
                type_name: #type_name,
                module_path: ::core::module_path!(),
                payload: #payload,
                reply: #reply,
            }
        }
    }
}

/// A block defining a describing fn for `ty` and evaluating to it.
fn describe_fn(name: &Ident, ty: TokenStream, krate: &CratePath) -> TokenStream {
    quote! {
        {
            fn #name(
                out: &mut #krate::__private::ts::Declarations,
            ) -> ::core::option::Option<#krate::__private::ts::TsType> {
                #[allow(unused_imports)]
                use #krate::__private::ts::{Described as _, Undescribed as _};
                (&&#krate::__private::ts::Probe::<#ty>::new()).describe(out)
            }
            #name
        }
    }
}

/// The registration of one channel's TypeScript description: its pattern,
/// its parameters' types and the ids of its events.
pub(crate) fn channel_record(
    pattern: &LitStr,
    ident: &Ident,
    params: &[(&Ident, &Type)],
    events: &[&Type],
    krate: &CratePath,
) -> TokenStream {
    let type_name = syn::ext::IdentExt::unraw(ident).to_string();
    let params = params.iter().enumerate().map(|(i, (name, ty))| {
        let name = syn::ext::IdentExt::unraw(*name).to_string();
        let describe = describe_fn(
            &format_ident!("__sente_lite_ts_param_{i}"),
            quote!(#ty),
            krate,
        );
        quote!((#name, #describe))
    });
    quote! {
        #krate::__private::inventory::submit! {
            #krate::__private::ts::ChannelTypeRecord {
                pattern: #pattern,
                type_name: #type_name,
                module_path: ::core::module_path!(),
                params: &[#(#params),*],
                events: &[#(<#events as #krate::Event>::ID),*],
            }
        }
    }
}
