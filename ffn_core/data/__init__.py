"""Data layer: TSN sampling, frame readers, clip transforms, dataset registry and list datasets.

``ffn_core.data.synthetic`` (the synthetic benchmark generator) registers its refined
``synthetic`` spec through :func:`register_dataset` when imported; a default ``synthetic`` spec is
registered here already, so reading a generated benchmark never depends on that import.
"""
from ffn_core.data.datasets import (
    DatasetSpec,
    VideoListDataset,
    VideoRecord,
    build_dataset,
    get_dataset_spec,
    list_datasets,
    read_list_file,
    register_dataset,
    write_list_file,
)
from ffn_core.data.readers import (
    DecordReader,
    FrameFolderReader,
    PyAVReader,
    Reader,
    VideoReadError,
    open_reader,
    probe_num_frames,
)
from ffn_core.data.sampling import multi_frequency_indices, segment_indices, union_indices
from ffn_core.data.transforms import build_transform

__all__ = [
    "DatasetSpec", "VideoListDataset", "VideoRecord", "build_dataset", "get_dataset_spec", "list_datasets",
    "read_list_file", "register_dataset", "write_list_file",
    "DecordReader", "FrameFolderReader", "PyAVReader", "Reader", "VideoReadError", "open_reader",
    "probe_num_frames", "multi_frequency_indices", "segment_indices", "union_indices", "build_transform",
]
