"""Reports: what a contract (or a variant of one) paid for, to whom, and whether it paid off.

- `data`: the report's facts (outcomes, instructions, institutions) and the summaries
  computed from them, whichever way they were obtained;
- `simulate`: the facts from replaying events through the pure engine (no Kafka, no
  money moves): `stafet simulate`;
- `live`: the facts from the running system's database: `stafet report`, `make demo`;
- `business_case`: estimated public savings against payments, with stated assumptions;
- `html`: one static HTML file, charts included, that works offline.
"""
