"""Data layer: TSN sampling, frame readers, clip transforms, dataset registry and list datasets.

The ``synthetic`` spec (videos written by ``ffn_core.data.synthetic``; classes from
``classes.txt``; no flip, since left/right is the label) is registered here, so reading a
generated benchmark needs no import of the generator.
"""
from ffn_core.data.datasets import (
    DataError,
    DatasetSpec,
    VideoListDataset,
    VideoRecord,
    build_dataset,
    get_dataset_spec,
    list_datasets,
    read_bad_log,
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
    "DataError", "DatasetSpec", "VideoListDataset", "VideoRecord", "build_dataset", "get_dataset_spec",
    "list_datasets", "read_bad_log", "read_list_file", "register_dataset", "write_list_file",
    "DecordReader", "FrameFolderReader", "PyAVReader", "Reader", "VideoReadError", "open_reader",
    "probe_num_frames", "multi_frequency_indices", "segment_indices", "union_indices", "build_transform",
]
