"""AV-ADE (wg, rd) on an LSUN category at 64x64 or 128x128 (papers/002 Table 5, Table 4's LSUN part).

  python -m adejax.main --config=configs/lsun_avade.py:church_outdoor,128 --workdir=DIR \
      --config.data.tfds_data_dir=/path/to/tensorflow_datasets

Needs `lsun/<category>` prepared in TFDS; centre-cropped to a square and resized, the training split
streamed, held-out numbers on the validation split. Batch 32; one more generator level at 64x64, two
at 128x128. Variant: a category and a resolution (default bedroom,64), plus `tiny` for tests.

  Table 5 (BPD / FID)  64x64        128x128
  bedroom              3.92 / 21.1  3.0 / 70.1
  tower                3.95 / 15.5  3.1 / 40.8
  bridge               4.1  / 25.2  3.4 / 64.2
  kitchen              4.0  / 15.3  3.1 / 45.2
  church_outdoor       4.3  / 13.2  3.5 / 47.3
  living_room          4.1  / 16.7  3.2 / 50.6
  dining_room          4.3  / 14.6  3.2 / 41.0
  classroom            4.6  / 20.0  3.5 / 59.2
  conference_room      4.2  / 21.3  3.1 / 61.7
  restaurant           4.7  / 20.5  3.8 / 60.0
"""
from adejax import config_lib
from configs.papers import p002

TABLE5 = {  # category: ((BPD, FID) at 64x64, (BPD, FID) at 128x128)
    "bedroom": ((3.92, 21.1), (3.0, 70.1)), "tower": ((3.95, 15.5), (3.1, 40.8)),
    "bridge": ((4.1, 25.2), (3.4, 64.2)), "kitchen": ((4.0, 15.3), (3.1, 45.2)),
    "church_outdoor": ((4.3, 13.2), (3.5, 47.3)), "living_room": ((4.1, 16.7), (3.2, 50.6)),
    "dining_room": ((4.3, 14.6), (3.2, 41.0)), "classroom": ((4.6, 20.0), (3.5, 59.2)),
    "conference_room": ((4.2, 21.3), (3.1, 61.7)), "restaurant": ((4.7, 20.5), (3.8, 60.0)),
}
RESOLUTIONS = ("64", "128")
PAPER = {f"{cat},{res}": dict(zip(("bpd", "fid"), numbers[i]))
         for cat, numbers in TABLE5.items() for i, res in enumerate(RESOLUTIONS)}


def get_config(variant: str = ""):
  file = "configs/lsun_avade.py"
  given = config_lib.parse_variant(variant, file, tuple(TABLE5) + RESOLUTIONS,
                                   exclusive=(tuple(TABLE5), RESOLUTIONS))
  category = next((n for n in given if n in TABLE5), "bedroom")
  size = int(next((n for n in given if n in RESOLUTIONS), "64"))
  return p002.variant_config("av-ade", "wg,rd" + ",tiny" * ("tiny" in given), file, ("rd", "wg"),
                              dataset=f"lsun/{category}", image_size=size)
