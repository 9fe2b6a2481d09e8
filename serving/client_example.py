"""Send rows to a served keras_mdr model over gRPC and print each task's probability.

Works against stock TF Serving (`docker compose -f serving/compose.yaml up`) and
against the local development server (`keras-mdr serve BASE_DIR --port 8500`):

    python serving/client_example.py --target localhost:8500 --model mdr \
        --row user_id=u1 --row item_id=3 --row gender=F --row category=c1 \
        --row tags="t1|t2" --row age=30 --row price=9.5 --row domain=d0

    python serving/client_example.py --target localhost:8500 --model mdr --data rows.csv

Without rows it prints the model's signature (input names and dtypes).
Values are sent as the dtypes the signature declares.
"""

import argparse
import json
import sys

import pandas as pd

from keras_mdr.serving import PredictClient, ServingError


def _read(path):
    if path.endswith(".parquet"):
        return pd.read_parquet(path)
    return pd.read_csv(path, keep_default_na=False)


def _row(pairs):
    row = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--row takes name=value, got {pair!r}")
        row[name] = [value]
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="localhost:8500", help="gRPC host:port")
    parser.add_argument("--model", default="mdr", help="served model name")
    parser.add_argument("--signature", default="serving_default")
    parser.add_argument("--data", help="a CSV or Parquet file of raw rows (extra columns are ignored)")
    parser.add_argument("--row", action="append", default=[], help="name=value, one per input")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)

    with PredictClient(args.target, args.model, signature=args.signature, timeout=args.timeout) as client:
        try:
            if not args.data and not args.row:
                metadata = client.metadata()
                print(json.dumps(metadata["signatures"][args.signature], indent=2))
                return 0
            data = _read(args.data) if args.data else _row(args.row)
            probabilities = client.predict(data)
        except ServingError as error:
            print(f"Request failed: {error}", file=sys.stderr)
            return 1
    print(pd.DataFrame(probabilities).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
