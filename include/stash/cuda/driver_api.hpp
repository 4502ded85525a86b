#pragma once
// The handful of CUDA driver entry points stash needs (the virtual memory management API), fetched
// once through the runtime with cudaGetDriverEntryPointByVersion. Nothing links libcuda: a binary
// built with stash starts on a machine without a driver and only fails, with a stash::cuda_error,
// when it first asks for device memory.
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime_api.h>

#include <string>

#include "stash/cuda/cuda_check.hpp"
#include "stash/error.hpp"

namespace stash::cuda {

/// Function pointers into the driver, named after the driver calls they point to.
struct driver_api {
  /// The ABI version the entry points are requested at; the typedefs below are those of that version.
  static constexpr unsigned int abi_version = 12000;

  PFN_cuGetErrorName_v6000 cuGetErrorName = nullptr;
  PFN_cuGetErrorString_v6000 cuGetErrorString = nullptr;
  PFN_cuDeviceGet_v2000 cuDeviceGet = nullptr;
  PFN_cuDeviceGetAttribute_v2000 cuDeviceGetAttribute = nullptr;
  PFN_cuMemGetAllocationGranularity_v10020 cuMemGetAllocationGranularity = nullptr;
  PFN_cuMemAddressReserve_v10020 cuMemAddressReserve = nullptr;
  PFN_cuMemAddressFree_v10020 cuMemAddressFree = nullptr;
  PFN_cuMemCreate_v10020 cuMemCreate = nullptr;
  PFN_cuMemRelease_v10020 cuMemRelease = nullptr;
  PFN_cuMemMap_v10020 cuMemMap = nullptr;
  PFN_cuMemUnmap_v10020 cuMemUnmap = nullptr;
  PFN_cuMemSetAccess_v10020 cuMemSetAccess = nullptr;
  PFN_cuMemExportToShareableHandle_v10020 cuMemExportToShareableHandle = nullptr;
  PFN_cuMemImportFromShareableHandle_v10020 cuMemImportFromShareableHandle = nullptr;
  PFN_cuMemRetainAllocationHandle_v11000 cuMemRetainAllocationHandle = nullptr;

  /// The entry points, looked up on first use. Throws stash::cuda_error when there is no driver or
  /// it lacks one of them; a later call tries again.
  static const driver_api& get() {
    static const driver_api api = load();
    return api;
  }

 private:
  template <class Fn>
  static void fetch(Fn& fn, const char* symbol) {
    void* address = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    check(cudaGetDriverEntryPointByVersion(symbol, &address, abi_version, cudaEnableDefault, &found),
          (std::string("cudaGetDriverEntryPointByVersion(\"") + symbol + "\")").c_str(), __FILE__,
          __LINE__);
    if (found != cudaDriverEntryPointSuccess || address == nullptr) {
      throw cuda_error(static_cast<int>(cudaErrorSymbolNotFound),
                       std::string("the CUDA driver has no entry point ") + symbol +
                           (found == cudaDriverEntryPointVersionNotSufficent
                                ? " at the version stash needs (driver too old)"
                                : ""));
    }
    fn = reinterpret_cast<Fn>(address);
  }

  static driver_api load() {
    driver_api api;
    fetch(api.cuGetErrorName, "cuGetErrorName");
    fetch(api.cuGetErrorString, "cuGetErrorString");
    fetch(api.cuDeviceGet, "cuDeviceGet");
    fetch(api.cuDeviceGetAttribute, "cuDeviceGetAttribute");
    fetch(api.cuMemGetAllocationGranularity, "cuMemGetAllocationGranularity");
    fetch(api.cuMemAddressReserve, "cuMemAddressReserve");
    fetch(api.cuMemAddressFree, "cuMemAddressFree");
    fetch(api.cuMemCreate, "cuMemCreate");
    fetch(api.cuMemRelease, "cuMemRelease");
    fetch(api.cuMemMap, "cuMemMap");
    fetch(api.cuMemUnmap, "cuMemUnmap");
    fetch(api.cuMemSetAccess, "cuMemSetAccess");
    fetch(api.cuMemExportToShareableHandle, "cuMemExportToShareableHandle");
    fetch(api.cuMemImportFromShareableHandle, "cuMemImportFromShareableHandle");
    fetch(api.cuMemRetainAllocationHandle, "cuMemRetainAllocationHandle");
    return api;
  }
};

/// The message of a failed driver call, in the same shape as describe_error's.
inline std::string describe_driver_error(CUresult status, const char* call, const char* file, int line) {
  const char* name = nullptr;
  const char* text = nullptr;
  const driver_api& api = driver_api::get();
  if (api.cuGetErrorName(status, &name) != CUDA_SUCCESS) name = nullptr;
  if (api.cuGetErrorString(status, &text) != CUDA_SUCCESS) text = nullptr;
  return std::string(call) + " failed: " +
         (name ? std::string(name) : "CUresult " + std::to_string(static_cast<int>(status))) + " (" +
         (text ? text : "no description") + ") at " + file + ":" + std::to_string(line);
}

/// Throws stash::cuda_error (code: the CUresult) unless `status` is CUDA_SUCCESS.
inline void check_driver(CUresult status, const char* call, const char* file, int line) {
  if (status == CUDA_SUCCESS) return;
  throw cuda_error(static_cast<int>(status), describe_driver_error(status, call, file, line));
}

}  // namespace stash::cuda

/// STASH_CU_CHECK(api.cuMemMap(...)); throws stash::cuda_error naming the driver call on failure.
#define STASH_CU_CHECK(call) ::stash::cuda::check_driver((call), #call, __FILE__, __LINE__)
