/* stash's C interface: one shared library that frameworks load at run time (PyTorch's
 * CUDAPluggableAllocator, CuPy through the Python package, or anything with dlopen/ctypes).
 *
 * It is a thin layer over one stash::memory_manager: one pool per device and one pool of pinned host
 * memory, made on first use with the options set by stash_configure() (or the STASH_CONF environment
 * variable). Without a GPU every pool draws ordinary host memory as one device, 0, so the interface can
 * be exercised anywhere.
 *
 * No C++ exception crosses this interface. Each function reports failure through its return value
 * (null, or a nonzero stash_status) and records a message that stash_last_error() returns on the same
 * thread. A request the memory cannot satisfy returns null and counts in num_ooms; a pointer this
 * library never handed out, or freed already, is reported on stderr as well, since the framework that
 * frees it has no way to receive an error.
 */
#ifndef STASH_C_H
#define STASH_C_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h> /* ssize_t, the type PyTorch's pluggable allocator passes sizes in */

#if defined(__GNUC__) || defined(__clang__)
#define STASH_C_API __attribute__((visibility("default")))
#else
#define STASH_C_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* cudaStream_t without the CUDA headers: the runtime defines it as exactly this pointer type. */
struct CUstream_st;
typedef struct CUstream_st* stash_stream_t;

typedef enum stash_status {
  STASH_OK = 0,
  STASH_ERROR_INVALID_ARGUMENT = 1, /* a bad option, size or device id */
  STASH_ERROR_INVALID_POINTER = 2,  /* not allocated here, or freed already */
  STASH_ERROR_OUT_OF_MEMORY = 3,
  STASH_ERROR_CUDA = 4,             /* a CUDA runtime or driver call failed */
  STASH_ERROR_UNSUPPORTED = 5,      /* a feature this build or the core does not have */
  STASH_ERROR_TOO_LATE = 6,         /* options after the first allocation */
  STASH_ERROR_INTERNAL = 7,
  STASH_ERROR_IPC = 8               /* another process's block could not be opened (stash_ipc_open) */
} stash_status;

/* Figures of one pool, as the core's stats_snapshot counts them, plus this layer's count of requests
 * that ended in out-of-memory. Every field is a byte count or an event count since the pool was made
 * (peaks: since the last stash_reset_peak). */
typedef struct stash_stats {
  uint64_t allocated_bytes;      /* live, as rounded */
  uint64_t requested_bytes;      /* live, as asked for */
  uint64_t cached_bytes;         /* held but free */
  uint64_t reserved_bytes;       /* held from the driver */
  uint64_t peak_allocated_bytes;
  uint64_t peak_requested_bytes;
  uint64_t peak_reserved_bytes;
  uint64_t allocations;
  uint64_t deallocations;
  uint64_t cache_hits;
  uint64_t backend_allocations;  /* segments allocated or pages mapped */
  uint64_t backend_frees;        /* segments freed or pages unmapped */
  uint64_t oom_retries;          /* times the cache was released to retry a request */
  uint64_t num_ooms;             /* requests that failed for lack of memory */
  uint64_t limit_bytes;          /* the most the pool may hold from the driver; UINT64_MAX: no limit */
  uint64_t page_moves;           /* paged pools: idle pages moved to where a block needed them */
} stash_stats;

/* PyTorch's pluggable signatures. size 0 returns null (as cudaMalloc(0) does) and is no error.
 * device -1 means the current device. Out of memory and bad arguments return null. */
STASH_C_API void* stash_alloc(ssize_t size, int device, stash_stream_t stream);
/* null is a no-op. size and device are those of the allocation: device's pool is asked first, then
 * whichever of this library's pools holds ptr (a free that names the wrong device still frees). */
STASH_C_API void stash_free(void* ptr, ssize_t size, int device, stash_stream_t stream);
/* ptr is also used on stream: its memory is not reused elsewhere before the work queued there is done
 * (PyTorch's Tensor.record_stream). STASH_ERROR_INVALID_POINTER when ptr is not a live allocation. */
STASH_C_API int stash_record_stream(void* ptr, stash_stream_t stream);
/* The caller is done with stream and may destroy it after this call: the frees made on it get their
 * event now (no wait), so that other streams reuse their memory once the work queued before them is
 * done. Without it, frees on a destroyed stream stay cached until stash_empty_cache or an out-of-memory
 * retry synchronizes the device. A stream stash never saw is a no-op. STASH_ERROR_CUDA when the event
 * cannot be recorded (those frees stay pending). */
STASH_C_API int stash_flush_stream(stash_stream_t stream);
/* 1: allocations follow stream order (freed memory is reused on another stream only after the work
 * queued before the free is done). Kept for callers that check; this library always passes streams. */
STASH_C_API int stash_stream_ordered(void);

/* Page-locked host memory (CuPy's pinned memory allocator). */
STASH_C_API void* stash_alloc_pinned(size_t size);
STASH_C_API int stash_free_pinned(void* ptr);

/* Gives cached memory back to the driver: one device (-1: every device made so far). */
STASH_C_API int stash_empty_cache(int device);
STASH_C_API int stash_empty_pinned_cache(void);
STASH_C_API int stash_get_stats(int device, stash_stats* out);
STASH_C_API int stash_get_pinned_stats(stash_stats* out);
STASH_C_API int stash_reset_peak(int device);
/* Caps what a device's pool may hold from the driver (-1: the current device), from now on: a request
 * past it is met as on a full device (the cache is released and the request retried, then null).
 * Lowering it below what is held gives nothing back by itself; stash_empty_cache does.
 * stash_set_memory_fraction: a fraction in [0, 1] of the device's total memory (PyTorch's
 * set_per_process_memory_fraction; STASH_ERROR_UNSUPPORTED without a GPU). stash_set_memory_limit:
 * bytes, UINT64_MAX for none. */
STASH_C_API int stash_set_memory_fraction(double fraction, int device);
STASH_C_API int stash_set_memory_limit(int device, uint64_t bytes);

/* Lets kernels and copies on device `peer` read and write the memory of device's pool (-1: the
 * current device; the pool is made if it was not): every page mapped now and every page mapped from
 * then on. Needed only with the option peer_access:none (PyTorch's enablePeerAccess). STASH_OK also
 * where there is nothing to grant (backend:segments, whose cudaMalloc memory peers reach once the
 * program calls cudaDeviceEnablePeerAccess; host memory) and for the device itself.
 * STASH_ERROR_INVALID_ARGUMENT for a bad device or peer id, or a peer that cannot reach the device
 * (cudaDeviceCanAccessPeer); nothing changes then. */
STASH_C_API int stash_grant_peer_access(int device, int peer);

/* CUDA graph pools (PyTorch's beginAllocateToPool, endAllocateToPool and releasePool hooks, which
 * torch.cuda.graph and CUDA graph trees use). A graph's kernels keep
 * the addresses they were captured with, so memory made for a graph goes to nobody else while the
 * graph may run, even once freed:
 *   - stash_graph_pool_begin: from now on, requests on `device` (-1: the current one) whose stream
 *     `filter(context, stream)` accepts (returns nonzero) go to pool (id_first, id_second), made on
 *     first use; each begin counts one user of the pool. filter and context must stay valid until the
 *     matching stash_graph_pool_end returns; filter is called under a lock, with no other stash call.
 *   - a block of a pool that is freed stays with the pool: a later request routed to it on the stream
 *     it was freed on may take it (whole; the smallest that fits), nobody else;
 *   - stash_graph_pool_end: ends the latest routing begun for that device and pool (capture ended);
 *   - stash_graph_pool_release: one user gone (a graph destroyed). With none left, the pool's blocks,
 *     once freed, go back to the device's pool at the next stash_empty_cache or out-of-memory retry,
 *     after a device-wide synchronize of every device with a pool (a replay may still run, on any
 *     stream), free for every stream at once; the streams of the capture and of the replays may be
 *     destroyed by then (stash names none of them). Not while a routing is in force, nor while a
 *     capture elsewhere makes the runtime refuse the synchronize: the blocks wait for a later call.
 * Until then a pool's blocks count as allocated in stash_get_stats. During a capture stash maps pages
 * and makes segments (in relaxed capture mode, as PyTorch does) and waits for nothing.
 * STASH_ERROR_INVALID_ARGUMENT for a bad device, a null filter, an end or release with nothing to end
 * or release; nothing changes then. */
typedef int (*stash_stream_filter)(void* context, stash_stream_t stream);
STASH_C_API int stash_graph_pool_begin(int device, uint64_t id_first, uint64_t id_second, stash_stream_filter filter,
                                       void* context);
STASH_C_API int stash_graph_pool_end(int device, uint64_t id_first, uint64_t id_second);
STASH_C_API int stash_graph_pool_release(int device, uint64_t id_first, uint64_t id_second);
/* One more user of a pool without routing (PyTorch's createOrIncrefPool, a MemPool made; the pool is
 * made on first use), and how many users it has now (0 for a pool that does not exist). */
STASH_C_API int stash_graph_pool_retain(int device, uint64_t id_first, uint64_t id_second);
STASH_C_API int stash_graph_pool_users(int device, uint64_t id_first, uint64_t id_second, size_t* users);

/* Checkpoints of a graph pool (PyTorch's CUDA graph trees, torch.compile(mode="reduce-overhead")).
 * stash_graph_pool_live_blocks writes the pool's live blocks (a pool that does not exist has none) to
 * out[0..capacity) and their number to *count; call again with room for *count when it is larger.
 * stash_graph_pool_set_live makes exactly the n blocks in `live` (blocks of the pool, live or freed)
 * its live blocks, the pool's other blocks freed to it; no memory is given back or moved.
 * STASH_ERROR_INVALID_ARGUMENT, changing nothing, for a pointer that is not a block of the pool, a
 * pool not in use, or a null array with n > 0. */
typedef struct stash_pool_block {
  void* ptr;
  uint64_t bytes;        /* as allocated */
  stash_stream_t stream; /* the stream it was allocated on */
} stash_pool_block;
STASH_C_API int stash_graph_pool_live_blocks(int device, uint64_t id_first, uint64_t id_second, stash_pool_block* out,
                                             size_t capacity, size_t* count);
STASH_C_API int stash_graph_pool_set_live(int device, uint64_t id_first, uint64_t id_second, void* const* live,
                                          size_t n);

/* Sharing a device block with another process, as cudaIpcGetMemHandle shares cudaMalloc'd memory,
 * with nothing but text between the processes (PyTorch's torch.multiprocessing sends bytes only).
 * Needs the option shareable:on (device pages of CUDA virtual memory created exportable as POSIX file
 * descriptors); README, "Behaviour we chose": sharing a block with another process.
 *   - stash_ipc_export: the live block that ptr lies in, whole, as NUL-terminated text in
 *     handle[0..capacity), and *offset (may be null) where ptr lies in it: the importer's pointer plus
 *     *offset is ptr there. *length is the bytes the text needs, NUL included, also when capacity is
 *     too small (STASH_ERROR_INVALID_ARGUMENT then). STASH_IPC_HANDLE_MAX bytes always suffice. A
 *     block's start (what stash_alloc returned) is found at once; a pointer inside a block takes a
 *     walk over its pool's blocks. The text
 *     names this process and its descriptors of the block's memory, which stay open until the block
 *     is freed: the block must stay allocated until every importer has opened it (and, as with
 *     cudaIpc, while they use it). Exporting one block again gives the same text.
 *     STASH_ERROR_INVALID_POINTER for a pointer in no live block;
 *     STASH_ERROR_UNSUPPORTED for memory that cannot be shared (shareable:off, backend:segments, host
 *     memory). Nothing changes then.
 *   - stash_ipc_open, in another process of the same machine: maps the block; *ptr is its start there,
 *     *size (may be null) its size as asked for. The importer takes the exporter's descriptors with
 *     pidfd_open and pidfd_getfd (Linux 5.6+), which needs ptrace permission over the exporter: the
 *     same user, and under Yama ptrace_scope 1 (Ubuntu's default) being its ancestor or named by its
 *     prctl(PR_SET_PTRACER) (PR_SET_PTRACER_ANY allows every process), or CAP_SYS_PTRACE. Statuses:
 *     STASH_ERROR_INVALID_ARGUMENT for text that is not a handle; STASH_ERROR_IPC when the kernel
 *     refuses, the exporter has exited or freed the block (the message says which);
 *     STASH_ERROR_UNSUPPORTED without a GPU; STASH_ERROR_CUDA when the driver refuses the memory.
 *     The importer needs no option, and its own allocations are unaffected.
 *   - stash_ipc_close: unmaps a block stash_ipc_open mapped (ptr as it returned). Work queued on it
 *     must be done (synchronize first). STASH_ERROR_INVALID_POINTER for any other pointer. */
#define STASH_IPC_HANDLE_MAX 32768
STASH_C_API int stash_ipc_export(const void* ptr, char* handle, size_t capacity, size_t* length, uint64_t* offset);
STASH_C_API int stash_ipc_open(const char* handle, void** ptr, uint64_t* size);
STASH_C_API int stash_ipc_close(void* ptr);

/* The memory a device's pool holds from the driver (-1: the current device; nothing for a device whose
 * pool is not made yet), for memory snapshots (stash.torch answers torch.cuda.memory._snapshot with
 * it): region(context, begin, bytes, paged) for each stretch of it in address order (a cudaMalloc
 * segment, or a run of mapped pages of CUDA virtual memory: paged 1), then block(context, addr, bytes,
 * requested, pool_first, pool_second) for the blocks that cover that stretch exactly, in address order:
 * requested is the size asked for of a live block, 0 for free memory; (pool_first, pool_second) the
 * CUDA graph pool the block belongs to (live, or freed and kept for the pool), (0, 0) for none. The
 * walk is copied under the pool's lock, then the callbacks are called: they see the pool as it was
 * then, and may call stash. They must return normally (a C++ callback catches its exceptions).
 * STASH_ERROR_INVALID_ARGUMENT for a null callback or a bad device; STASH_ERROR_OUT_OF_MEMORY when
 * the host heap cannot hold the copy (no callback is called then). */
typedef void (*stash_region_visitor)(void* context, void* begin, uint64_t bytes, int paged);
typedef void (*stash_block_visitor)(void* context, void* addr, uint64_t bytes, uint64_t requested,
                                    uint64_t pool_first, uint64_t pool_second);
STASH_C_API int stash_visit_memory(int device, stash_region_visitor region, stash_block_visitor block,
                                   void* context);

/* Options as "key:value,key:value" (the form of PYTORCH_ALLOC_CONF); see stash_option_help(). Must come
 * before the first allocation (STASH_ERROR_TOO_LATE otherwise). A bad option changes nothing, and the
 * error names it. When it is never called, the first allocation reads STASH_CONF. */
STASH_C_API int stash_configure(const char* conf);
/* Checks options as stash_configure would take them, and changes nothing: STASH_OK, or the status
 * and message (stash_last_error) stash_configure would give. */
STASH_C_API int stash_check_options(const char* conf);
/* The options in force, in the same form (a static string, valid until the next stash_configure). */
STASH_C_API const char* stash_options(void);
/* One line per option: name, value form, default, meaning. */
STASH_C_API const char* stash_option_help(void);

/* Number of devices the pools can serve; "cuda" or "host" for where their memory comes from. */
STASH_C_API int stash_device_count(void);
STASH_C_API const char* stash_backing(void);
/* The message of the last failure on the calling thread ("" when none); stash_clear_error resets it. */
STASH_C_API const char* stash_last_error(void);
STASH_C_API void stash_clear_error(void);

#ifdef __cplusplus
}
#endif

#endif /* STASH_C_H */
