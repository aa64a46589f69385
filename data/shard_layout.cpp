// The HDF5 types the format needs that HDF5 1.10 does not predefine.
#include "data/shard_layout.h"

namespace starflow::data::layout {

Hdf5Handle half_float_type(const std::string& path) {
  Hdf5Lock lock(path);
  Hdf5Handle type = checked_datatype(H5Tcopy(H5T_IEEE_F32LE), path, "H5Tcopy (float16 type)");
  // Shrink the fields before the size: H5Tset_size refuses a size smaller than the fields it holds.
  h5Check(H5Tset_fields(type.get(), 15, 10, 5, 0, 10), path, "H5Tset_fields (float16 type)");
  h5Check(H5Tset_size(type.get(), 2), path, "H5Tset_size (float16 type)");
  h5Check(H5Tset_ebias(type.get(), 15), path, "H5Tset_ebias (float16 type)");
  return type;
}

Hdf5Handle bfloat16_type(const std::string& path) {
  Hdf5Lock lock(path);
  Hdf5Handle type = checked_datatype(H5Tcopy(H5T_IEEE_F32LE), path, "H5Tcopy (bfloat16 type)");
  h5Check(H5Tset_fields(type.get(), 15, 7, 8, 0, 7), path, "H5Tset_fields (bfloat16 type)");
  h5Check(H5Tset_size(type.get(), 2), path, "H5Tset_size (bfloat16 type)");
  h5Check(H5Tset_ebias(type.get(), 127), path, "H5Tset_ebias (bfloat16 type)");
  return type;
}

Hdf5Handle utf8_string_type(const std::string& path) {
  Hdf5Lock lock(path);
  Hdf5Handle type = checked_datatype(H5Tcopy(H5T_C_S1), path, "H5Tcopy (string type)");
  h5Check(H5Tset_size(type.get(), H5T_VARIABLE), path, "H5Tset_size (string type)");
  h5Check(H5Tset_cset(type.get(), H5T_CSET_UTF8), path, "H5Tset_cset (string type)");
  return type;
}

}  // namespace starflow::data::layout
