"""`elysium export` and `elysium convert-released`: the Hub subcommands of the `elysium` CLI."""

from __future__ import annotations

import argparse

from elysium.utils.errors import UserError


def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from elysium.inference.loading import check_weights_file, load_error_message

    from .export import ExportError, PushError, export, push_folder

    if Path(args.model).is_dir():
        check_weights_file(Path(args.model))  # an empty or cut model.safetensors: one line, before loading
    try:
        out = export(
            args.model,
            args.out,
            max_shard_size=args.max_shard_size,
            repo_id=args.push_to_hub,
            license=args.license,
            overwrite=args.overwrite,
        )
    except ExportError as error:
        raise UserError(str(error)) from error
    except (OSError, ValueError, RuntimeError) as error:  # e.g. a config.json that does not match the weights
        raise UserError(load_error_message(Path(args.model), error)) from None
    print(f"exported {out}")
    if args.push_to_hub:
        try:
            url = push_folder(out, args.push_to_hub, private=args.private)
        except PushError as error:
            raise UserError(str(error)) from error
        print(f"pushed {out} to {url}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from .convert_released import ConversionError, convert_released

    try:
        out = convert_released(
            args.src,
            args.out,
            config=args.config,
            tokenizer=args.tokenizer,
            t_selector_tokens=args.t_selector_tokens,
            dtype=args.dtype,
            overwrite=args.overwrite,
        )
    except ConversionError as error:
        raise UserError(str(error)) from error
    print(f"converted {args.src} -> {out}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `export` and `convert-released` on the `elysium` command."""
    export = subparsers.add_parser(
        "export",
        help="write a Hub-ready folder (code, sharded weights, processor, model card); optionally push it",
        description="Write a folder that loads with AutoModel/AutoProcessor.from_pretrained(..., "
        "trust_remote_code=True) without the elysium package, then optionally upload it.",
    )
    export.add_argument("--model", required=True, help="folder with a saved Elysium model and its processor")
    export.add_argument("--out", required=True, help="Hub folder to write (must not exist unless --overwrite)")
    export.add_argument("--push-to-hub", metavar="REPO_ID", help="upload the folder to this Hub repo afterwards")
    export.add_argument("--private", action="store_true", help="create the Hub repo as private")
    export.add_argument("--max-shard-size", default="5GB", help="largest safetensors shard (default: 5GB)")
    export.add_argument("--license", default="llama2", help="license in the model card (default: llama2)")
    export.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    export.set_defaults(run=_export)

    convert = subparsers.add_parser(
        "convert-released",
        help="convert the released sty-yyj/elysium_7b checkpoint to this package's layout",
        description="Rename the released checkpoint's weights (visual_encoder, adapter, llm_proj, llm) to "
        "ElysiumForConditionalGeneration's, read the LLM/CLIP configs its config.json names (local folders or the "
        "local Hub cache only), and write the Hub-ready folder `elysium export` writes, with the released prompt "
        "format: AutoModel.from_pretrained(out, trust_remote_code=True) loads it.",
    )
    convert.add_argument("--src", required=True, help="released checkpoint: a folder, or one .bin/.pt/.safetensors")
    convert.add_argument("--out", required=True, help="folder to write")
    convert.add_argument("--config", help="ElysiumConfig JSON to use instead of the source's or the inferred one")
    convert.add_argument(
        "--tokenizer", help="tokenizer folder (default: the source folder's, else the LLM's its config.json names)"
    )
    convert.add_argument(
        "--t-selector-tokens", type=int, default=None, help="tokens kept per frame (default: config's, else 108)"
    )
    convert.add_argument(
        "--dtype", default="keep", choices=["keep", "float32", "float16", "bfloat16"], help="cast the weights"
    )
    convert.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    convert.set_defaults(run=_convert)
