// Host SIMT shim runtime: fiber scheduler, meeting points, launch, schedules, fault handling.
// See README.md beside this file for the model and its limits.
#include "simt.h"

#include <csetjmp>
#include <csignal>
#include <cstdarg>
#include <mutex>
#include <string>
#include <vector>

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#if !defined(__x86_64__) || defined(HOST_SIMT_UCONTEXT)
#define HOST_SIMT_USE_UCONTEXT 1
#include <ucontext.h>
#endif

uint3 threadIdx;
uint3 blockIdx;
dim3 blockDim;
dim3 gridDim;

static_assert(sizeof(HostLaunch) == 40 && offsetof(HostLaunch, dynamic_smem) == 16 &&
                  offsetof(HostLaunch, schedule_seed) == 32,
              "HostLaunch layout is shared with src/host_simt/mod.rs");

namespace {
constexpr size_t kDynamicSmemBytes = 232448;  // 227 KiB: the H100/H200 per-block maximum
}
extern "C" {
alignas(1024) unsigned char host_simt_dynamic_smem[kDynamicSmemBytes];
}

// ---------------------------------------------------------------------------------------------
// Context switch. x86-64: saves the System V callee-saved registers on the old stack and swaps
// stack pointers (FP control state is shared by all fibers and not switched).
// ---------------------------------------------------------------------------------------------
#ifndef HOST_SIMT_USE_UCONTEXT
extern "C" void host_simt_switch(void** save_sp, void* next_sp);
extern "C" void host_simt_fiber_start();
asm(R"(
  .pushsection .text
  .globl host_simt_switch
  .hidden host_simt_switch
  .type host_simt_switch, @function
  .p2align 4
host_simt_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size host_simt_switch, .-host_simt_switch

  .globl host_simt_fiber_start
  .hidden host_simt_fiber_start
  .type host_simt_fiber_start, @function
  .p2align 4
host_simt_fiber_start:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size host_simt_fiber_start, .-host_simt_fiber_start
  .popsection
)");
#endif

namespace host_simt {
namespace {

constexpr size_t kStackBytes = 64 * 1024;
constexpr unsigned kMaxThreads = 1024;

struct Context {
#ifdef HOST_SIMT_USE_UCONTEXT
  ucontext_t uc;
#else
  void* sp = nullptr;
#endif
};

inline void ctx_switch(Context& from, Context& to) {
#ifdef HOST_SIMT_USE_UCONTEXT
  swapcontext(&from.uc, &to.uc);
#else
  host_simt_switch(&from.sp, to.sp);
#endif
}

enum class St : unsigned char { Run, Bar, Warp, Done };

struct Fiber {
  Context ctx;
  unsigned tid = 0;
  St st = St::Done;
  int op = 0;     // BarKind or WarpOp
  int pred = 0;   // __syncthreads_* predicate
  unsigned mask = 0;
  int b = 0, width = 32;
  unsigned long long value = 0, result = 0;
  Loc loc;
};

// State of the running launch. Everything here is guarded by g_mutex (one launch at a time).
struct LaunchState {
  const char* name = "";
  void (*body)(void*) = nullptr;
  void* ctx = nullptr;
  unsigned nthreads = 0, nwarps = 0;
  unsigned long long nblocks = 0;
  int schedule = 0;
  unsigned long long rng = 0;
  size_t dynamic_smem = 0;
  std::vector<Fiber> fibers;
  std::vector<unsigned> order;
  std::vector<unsigned long long> block_order;
  unsigned n_done = 0, n_bar = 0;
  unsigned long long events = 0;  // arrivals at meeting points and exits
  bool failed = false;
  int code = 0;
  std::string msg;
};

std::mutex g_mutex;
LaunchState L;
Context g_sched;
Fiber* g_cur = nullptr;
thread_local std::string t_last_error;

// Fault recovery (SIGSEGV/SIGBUS inside a kernel thread).
sigjmp_buf g_jmp;
volatile sig_atomic_t g_jmp_armed = 0;
volatile sig_atomic_t g_in_fiber = 0;
pthread_t g_launch_thread;
void* volatile g_fault_addr = nullptr;
volatile sig_atomic_t g_fault_sig = 0;
struct sigaction g_old_segv, g_old_bus;

const char* op_name(int op) {
  switch (op) {
    case kShflIdx: return "__shfl_sync";
    case kShflUp: return "__shfl_up_sync";
    case kShflDown: return "__shfl_down_sync";
    case kShflXor: return "__shfl_xor_sync";
    case kBallot: return "__ballot_sync";
    case kAny: return "__any_sync";
    case kAll: return "__all_sync";
    case kSyncWarp: return "__syncwarp";
    case kMatchAny: return "__match_any_sync";
    case kMatchAll: return "__match_all_sync";
    case kReduceAdd: return "__reduce_add_sync";
    case kReduceMinU: case kReduceMinI: return "__reduce_min_sync";
    case kReduceMaxU: case kReduceMaxI: return "__reduce_max_sync";
    case kReduceAnd: return "__reduce_and_sync";
    case kReduceOr: return "__reduce_or_sync";
    case kReduceXor: return "__reduce_xor_sync";
    default: return "warp primitive";
  }
}
const char* bar_name(int kind) {
  switch (kind) {
    case kBarCount: return "__syncthreads_count";
    case kBarAnd: return "__syncthreads_and";
    case kBarOr: return "__syncthreads_or";
    default: return "__syncthreads";
  }
}

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}
std::string site(const Loc& l) { return fmt("%s:%u:%u", l.file_name(), l.line(), l.column()); }
std::string where(const Fiber& f) {
  return fmt("thread %u (warp %u lane %u) of block (%u,%u)", f.tid, f.tid / 32, f.tid % 32,
             blockIdx.x, blockIdx.y);
}
// "0-3,7,9-31"
std::string lane_list(unsigned m) {
  std::string s;
  for (int i = 0; i < 32;) {
    if (!((m >> i) & 1)) { i++; continue; }
    int j = i;
    while (j + 1 < 32 && ((m >> (j + 1)) & 1)) j++;
    if (!s.empty()) s += ',';
    s += j == i ? fmt("%d", i) : fmt("%d-%d", i, j);
    i = j + 1;
  }
  return s;
}
bool same_loc(const Loc& a, const Loc& b) {
  return a.line() == b.line() && a.column() == b.column() &&
         (a.file_name() == b.file_name() || std::strcmp(a.file_name(), b.file_name()) == 0);
}

// Records the launch's first error (later ones are consequences).
void set_error(int code, std::string msg) {
  if (!L.failed) {
    L.failed = true;
    L.code = code;
    L.msg = std::move(msg);
  }
}

Fiber* current(const char* what) {
  if (!g_cur) {
    std::fprintf(stderr, "host-simt: %s called outside a kernel launch\n", what);
    std::abort();
  }
  return g_cur;
}

// Ends the launch from inside a fiber: record the error and never come back.
[[noreturn]] void fail(int code, std::string msg) {
  Fiber* f = current("kernel failure");
  set_error(code, std::move(msg));
  std::string().swap(msg);  // this stack is abandoned; release what the string may still hold
  ctx_switch(f->ctx, g_sched);
  __builtin_unreachable();
}

// ---------------------------------------------------------------------------------------------
// Stacks: one reservation for kMaxThreads stacks of kStackBytes, each above a PROT_NONE guard
// page; made usable lazily and reused by every later block and launch.
// ---------------------------------------------------------------------------------------------
struct StackPool {
  char* base = nullptr;
  size_t page = 0, stride = 0;
  unsigned ready = 0;
  bool ensure(unsigned n) {
    if (!base) {
      page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
      stride = kStackBytes + page;
      void* p = mmap(nullptr, stride * kMaxThreads, PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) return false;
      base = static_cast<char*>(p);
    }
    for (; ready < n; ready++) {
      if (mprotect(base + ready * stride + page, kStackBytes, PROT_READ | PROT_WRITE) != 0)
        return false;
    }
    return true;
  }
  char* top(unsigned i) const { return base + (i + 1) * stride; }
  bool in_guard(const void* a) const {
    auto p = reinterpret_cast<uintptr_t>(a), b = reinterpret_cast<uintptr_t>(base);
    if (!base || p < b || p >= b + stride * kMaxThreads) return false;
    return (p - b) % stride < page;
  }
};
StackPool g_stacks;

extern "C" void host_simt_fiber_main(void*);

void fiber_init(Fiber& f, unsigned i) {
  // Offset each stack top by a few cache lines so the fibers' hot frames do not all map to the
  // same L1 sets (the stacks are a multiple of 4 KiB apart).
  char* top = g_stacks.top(i) - (i % 32) * 64;
#ifdef HOST_SIMT_USE_UCONTEXT
  getcontext(&f.ctx.uc);
  f.ctx.uc.uc_stack.ss_sp = g_stacks.top(i) - kStackBytes;
  f.ctx.uc.uc_stack.ss_size = static_cast<size_t>(top - static_cast<char*>(f.ctx.uc.uc_stack.ss_sp));
  f.ctx.uc.uc_link = nullptr;
  makecontext(&f.ctx.uc, reinterpret_cast<void (*)()>(host_simt_fiber_main), 0);
#else
  void** sp = reinterpret_cast<void**>(top);  // 16-byte aligned
  *--sp = reinterpret_cast<void*>(host_simt_fiber_start);  // return address of the first switch
  *--sp = nullptr;                                         // rbp
  *--sp = nullptr;                                         // rbx
  *--sp = &f;                                              // r12: argument
  *--sp = reinterpret_cast<void*>(host_simt_fiber_main);   // r13: entry
  *--sp = nullptr;                                         // r14
  *--sp = nullptr;                                         // r15
  f.ctx.sp = sp;
#endif
}

unsigned long long next_rand() {  // splitmix64
  unsigned long long z = (L.rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
template <class T>
void shuffle(std::vector<T>& v) {
  for (size_t i = v.size(); i > 1; i--) std::swap(v[i - 1], v[next_rand() % i]);
}

unsigned lanes_existing(unsigned warp) {
  unsigned nl = std::min(32u, L.nthreads - warp * 32);
  return nl == 32 ? 0xffffffffu : ((1u << nl) - 1);
}

inline void resume(Fiber& f) {
  g_cur = &f;
  threadIdx.x = f.tid;
  g_in_fiber = 1;
  ctx_switch(g_sched, f.ctx);
  g_in_fiber = 0;
  g_cur = nullptr;
}

// ---------------------------------------------------------------------------------------------
// Meeting-point resolution (scheduler side, after every round)
// ---------------------------------------------------------------------------------------------
void exec_warp_op(unsigned base, unsigned m) {
  Fiber* fb = &L.fibers[base];
  const int op = fb[std::countr_zero(m)].op;
  unsigned long long all = 0;
  bool first = true;
  unsigned long long red = 0;
  for (unsigned r = m; r; r &= r - 1) {
    unsigned l = static_cast<unsigned>(std::countr_zero(r));
    const unsigned long long v = fb[l].value;
    if (v) all |= 1ull << l;
    unsigned u = static_cast<unsigned>(v);
    int s = static_cast<int>(u);
    switch (op) {
      case kReduceAdd: red += u; break;
      case kReduceMinU: red = first || u < red ? u : red; break;
      case kReduceMaxU: red = first || u > red ? u : red; break;
      case kReduceMinI:
        red = first || s < static_cast<int>(red) ? static_cast<unsigned>(s) : red;
        break;
      case kReduceMaxI:
        red = first || s > static_cast<int>(red) ? static_cast<unsigned>(s) : red;
        break;
      case kReduceAnd: red = first ? u : (red & u); break;
      case kReduceOr: red |= u; break;
      case kReduceXor: red ^= u; break;
      default: break;
    }
    first = false;
  }
  for (unsigned r = m; r; r &= r - 1) {
    const int l = std::countr_zero(r);
    Fiber& f = fb[l];
    unsigned long long res = 0;
    switch (op) {
      case kShflIdx: case kShflUp: case kShflDown: case kShflXor: {
        // PTX shfl.sync semantics, with c = ((32 - width) << 8) | (up ? 0 : 0x1f).
        const int segmask = (32 - f.width) & 0x1f;
        const int cval = op == kShflUp ? 0 : 0x1f;
        const int bval = f.b & 0x1f;
        const int max_lane = (l & segmask) | (cval & ~segmask);
        const int min_lane = l & segmask;
        int j = l;
        bool ok = false;
        if (op == kShflUp) { j = l - bval; ok = j >= max_lane; }
        else if (op == kShflDown) { j = l + bval; ok = j <= max_lane; }
        else if (op == kShflXor) { j = l ^ bval; ok = j <= max_lane; }
        else { j = min_lane | (bval & ~segmask); ok = j <= max_lane; }
        if (!ok) j = l;
        // Reading a lane outside the mask is undefined on the GPU: hand back all-ones bits.
        res = ((m >> j) & 1) ? fb[j].value : ~0ull;
        break;
      }
      case kBallot: res = all; break;
      case kAny: res = all != 0; break;
      case kAll: res = all == m; break;
      case kSyncWarp: res = 0; break;
      case kMatchAny: {
        unsigned mm = 0;
        for (unsigned q = m; q; q &= q - 1) {
          const int k = std::countr_zero(q);
          if (fb[k].value == f.value) mm |= 1u << k;
        }
        res = mm;
        break;
      }
      case kMatchAll: {
        bool eq = true;
        for (unsigned q = m; q; q &= q - 1)
          if (fb[std::countr_zero(q)].value != f.value) eq = false;
        res = eq ? (m | (1ull << 32)) : 0;
        break;
      }
      default: res = red & 0xffffffffull; break;
    }
    f.result = res;
    f.st = St::Run;
  }
}

bool same_warp_op(const Fiber& a, const Fiber& b) {
  return a.op == b.op && a.mask == b.mask && (a.op == kSyncWarp || same_loc(a.loc, b.loc));
}

// Releases every meeting point whose participants have all arrived. Returns threads released.
unsigned resolve() {
  unsigned released = 0;
  const unsigned n = L.nthreads;
  Fiber* fb = L.fibers.data();
  for (unsigned w = 0; w < L.nwarps; w++) {
    const unsigned base = w * 32, nl = std::min(32u, n - base);
    unsigned waiting = 0, done = 0;
    for (unsigned l = 0; l < nl; l++) {
      if (fb[base + l].st == St::Warp) waiting |= 1u << l;
      else if (fb[base + l].st == St::Done) done |= 1u << l;
    }
    for (unsigned todo = waiting; todo;) {
      const unsigned l = static_cast<unsigned>(std::countr_zero(todo));
      const Fiber& f = fb[base + l];
      const unsigned m = f.mask;
      unsigned group = 0;
      for (unsigned q = m & waiting; q; q &= q - 1) {
        const int k = std::countr_zero(q);
        if (same_warp_op(fb[base + k], f)) group |= 1u << k;
      }
      todo &= ~(group | (1u << l));
      if (m & done) {
        set_error(HOST_SIMT_ERR_DEADLOCK,
                  fmt("deadlock: lanes %s of warp %u (block (%u,%u)) wait at %s (mask 0x%08x) "
                      "at %s, but lanes %s named in the mask have exited and never reach it",
                      lane_list(group).c_str(), w, blockIdx.x, blockIdx.y, op_name(f.op), m,
                      site(f.loc).c_str(), lane_list(m & done).c_str()));
        return released;
      }
      if (group == m) {
        exec_warp_op(base, m);
        waiting &= ~m;
        released += static_cast<unsigned>(std::popcount(m));
      }
    }
  }
  if (L.n_bar > 0) {
    if (L.n_bar == n) {
      const Fiber& f0 = fb[0];
      unsigned count = 0;
      for (unsigned i = 0; i < n; i++) {
        if (fb[i].op != f0.op || !same_loc(fb[i].loc, f0.loc)) {
          set_error(HOST_SIMT_ERR_DEADLOCK,
                    fmt("threads of block (%u,%u) meet at different barriers: thread 0 at %s "
                        "(%s), thread %u at %s (%s); every thread must reach the same one",
                        blockIdx.x, blockIdx.y, bar_name(f0.op), site(f0.loc).c_str(), i,
                        bar_name(fb[i].op), site(fb[i].loc).c_str()));
          return released;
        }
        count += fb[i].pred != 0;
      }
      const unsigned long long res = f0.op == kBarCount ? count
                                     : f0.op == kBarAnd ? (count == n)
                                     : f0.op == kBarOr  ? (count > 0)
                                                        : 0;
      for (unsigned i = 0; i < n; i++) {
        fb[i].result = res;
        fb[i].st = St::Run;
      }
      L.n_bar = 0;
      released += n;
    } else if (L.n_bar + L.n_done == n) {
      const Fiber* w = nullptr;
      unsigned fd = n;
      for (unsigned i = 0; i < n; i++) {
        if (!w && fb[i].st == St::Bar) w = &fb[i];
        if (fd == n && fb[i].st == St::Done) fd = i;
      }
      set_error(HOST_SIMT_ERR_DEADLOCK,
                fmt("deadlock: %u threads of block (%u,%u) exited (first: thread %u) while %u "
                    "threads wait at %s at %s (first: thread %u); every thread of the block must "
                    "reach each __syncthreads",
                    L.n_done, blockIdx.x, blockIdx.y, fd, L.n_bar, bar_name(w->op),
                    site(w->loc).c_str(), w->tid));
    }
  }
  return released;
}

std::string describe(const Fiber& f) {
  switch (f.st) {
    case St::Run: return "runnable";
    case St::Done: return "exited";
    case St::Bar: return fmt("wait at %s at %s", bar_name(f.op), site(f.loc).c_str());
    case St::Warp:
      return fmt("wait at %s (mask 0x%08x) at %s", op_name(f.op), f.mask, site(f.loc).c_str());
  }
  return "?";
}

void report_stuck(bool livelock) {
  std::string m =
      livelock
          ? fmt("livelock in block (%u,%u): only threads spinning in __nanosleep ran for %u "
                "rounds and nothing else happened. Threads:",
                blockIdx.x, blockIdx.y, 1u << 22)
          : fmt("deadlock in block (%u,%u): no thread can make progress (each waits at a "
                "barrier or warp primitive that some thread it waits for never reaches). "
                "Threads:",
                blockIdx.x, blockIdx.y);
  const unsigned n = L.nthreads;
  unsigned lines = 0;
  for (unsigned i = 0; i < n;) {
    std::string d = describe(L.fibers[i]);
    unsigned j = i;
    while (j + 1 < n && describe(L.fibers[j + 1]) == d) j++;
    if (++lines > 24) {
      m += " ...";
      break;
    }
    m += j == i ? fmt("\n  thread %u: ", i) : fmt("\n  threads %u-%u: ", i, j);
    m += d;
    i = j + 1;
  }
  set_error(HOST_SIMT_ERR_DEADLOCK, std::move(m));
}

// Runs the current block to completion. No locals with destructors: a fault longjmps over it.
bool run_block() {
  const unsigned n = L.nthreads;
  for (unsigned i = 0; i < n; i++) {
    Fiber& f = L.fibers[i];
    f.tid = i;
    f.st = St::Run;
    fiber_init(f, i);
  }
  L.n_done = 0;
  L.n_bar = 0;
  unsigned long long idle_rounds = 0;
  for (;;) {
    const unsigned long long events_before = L.events;
    if (L.schedule == 2) shuffle(L.order);
    for (unsigned k = 0; k < n; k++) {
      Fiber& f = L.fibers[L.order[k]];
      if (f.st != St::Run) continue;
      resume(f);
      if (L.failed) return false;
    }
    if (L.n_done == n) return true;
    const unsigned released = resolve();
    if (L.failed) return false;
    if (released == 0) {
      bool runnable = false;
      for (unsigned i = 0; i < n && !runnable; i++) runnable = L.fibers[i].st == St::Run;
      if (!runnable) {
        report_stuck(false);
        return false;
      }
      // Only __nanosleep spinners ran: give up after a long time without any other progress.
      if (L.events != events_before) {
        idle_rounds = 0;
      } else if (++idle_rounds > (1u << 22)) {
        report_stuck(true);
        return false;
      }
    } else {
      idle_rounds = 0;
    }
  }
}

std::vector<std::pair<void*, size_t>>& shared_registry() {
  static std::vector<std::pair<void*, size_t>> v;
  return v;
}

void run_grid() {
  const unsigned long long gx = gridDim.x;
  for (unsigned long long k = 0; k < L.nblocks; k++) {
    const unsigned long long lin = L.schedule == 2   ? L.block_order[k]
                                   : L.schedule == 1 ? L.nblocks - 1 - k
                                                     : k;
    blockIdx.x = static_cast<unsigned>(lin % gx);
    blockIdx.y = static_cast<unsigned>(lin / gx);
    blockIdx.z = 0;
    for (auto& [p, bytes] : shared_registry()) std::memset(p, 0xff, bytes);
    std::memset(host_simt_dynamic_smem, 0xff, L.dynamic_smem);
    if (!run_block()) return;
  }
}

void on_fault(int sig, siginfo_t* si, void* uc) {
  if (g_jmp_armed && g_in_fiber && pthread_equal(pthread_self(), g_launch_thread)) {
    g_fault_sig = sig;
    g_fault_addr = si->si_addr;
    g_in_fiber = 0;
    siglongjmp(g_jmp, 1);
  }
  // Not ours: hand over to whoever was installed before (e.g. Rust's stack-overflow reporter).
  const struct sigaction& old = sig == SIGSEGV ? g_old_segv : g_old_bus;
  if ((old.sa_flags & SA_SIGINFO) && old.sa_sigaction) {
    old.sa_sigaction(sig, si, uc);
  } else if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN && old.sa_handler) {
    old.sa_handler(sig);
  } else {
    signal(sig, SIG_DFL);  // returning re-executes the access and takes the default action
  }
}

void install_fault_handlers() {
  static bool done = false;
  if (done) return;
  done = true;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_old_segv);
  sigaction(SIGBUS, &sa, &g_old_bus);
}

// The handler must not run on the overflowing fiber stack. Rust threads have an alternate signal
// stack already; give one to threads that do not.
struct AltStack {
  void* mem = nullptr;
  size_t size = 0;
  ~AltStack() {
    if (mem) {
      stack_t ss;
      std::memset(&ss, 0, sizeof ss);
      ss.ss_flags = SS_DISABLE;
      sigaltstack(&ss, nullptr);
      munmap(mem, size);
    }
  }
};
thread_local AltStack t_alt;
void ensure_altstack() {
  stack_t cur;
  if (sigaltstack(nullptr, &cur) != 0 || !(cur.ss_flags & SS_DISABLE)) return;
  const size_t size = 64 * 1024;
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return;
  stack_t ss;
  std::memset(&ss, 0, sizeof ss);
  ss.ss_sp = p;
  ss.ss_size = size;
  if (sigaltstack(&ss, nullptr) != 0) {
    munmap(p, size);
    return;
  }
  t_alt.mem = p;
  t_alt.size = size;
}

std::string validate(const HostLaunch* c) {
  if (!c) return "null HostLaunch";
  if (c->block_x == 0 || c->block_x > kMaxThreads)
    return fmt("blockDim.x = %u: must be 1..=%u", c->block_x, kMaxThreads);
  if (c->grid_x == 0 || c->grid_x > 0x7fffffffu || c->grid_y == 0 || c->grid_y > 65535)
    return fmt("gridDim = (%u,%u): x must be 1..=2^31-1 and y 1..=65535", c->grid_x, c->grid_y);
  if (c->dynamic_smem > kDynamicSmemBytes)
    return fmt("dynamic shared memory of %zu bytes exceeds the per-block maximum of %zu",
               c->dynamic_smem, kDynamicSmemBytes);
  if (c->schedule < 0 || c->schedule > 2)
    return fmt("schedule %d: must be 0 (forward), 1 (reverse) or 2 (seeded random)",
               c->schedule);
  return {};
}

}  // namespace

extern "C" void host_simt_fiber_main(void*) {
  Fiber* f = g_cur;
  std::string what;
  bool threw = false;
  try {
    L.body(L.ctx);
  } catch (const std::exception& e) {
    threw = true;
    what = e.what();
  } catch (...) {
    threw = true;
    what = "unknown exception";
  }
  if (threw) fail(HOST_SIMT_ERR_EXCEPTION, fmt("C++ exception escaped the kernel in %s: %s",
                                               where(*f).c_str(), what.c_str()));
  std::string().swap(what);
  f->st = St::Done;
  L.n_done++;
  L.events++;
  ctx_switch(f->ctx, g_sched);
  __builtin_unreachable();
}

// ---------------------------------------------------------------------------------------------
// Entry points used by simt.h
// ---------------------------------------------------------------------------------------------
int block_barrier(int kind, int pred, Loc loc) {
  Fiber* f = current(bar_name(kind));
  f->st = St::Bar;
  f->op = kind;
  f->pred = pred != 0;
  f->loc = loc;
  L.n_bar++;
  L.events++;
  ctx_switch(f->ctx, g_sched);
  return static_cast<int>(f->result);
}

unsigned long long warp_op(int op, unsigned mask, unsigned long long value, int b, int width,
                           Loc loc) {
  Fiber* f = current(op_name(op));
  const unsigned lane = f->tid % 32, warp = f->tid / 32;
  const unsigned exist = lanes_existing(warp);
  if (!((mask >> lane) & 1))
    fail(HOST_SIMT_ERR_WARP_USAGE,
         fmt("%s at %s: %s passes mask 0x%08x, which does not include its own lane",
             op_name(op), site(loc).c_str(), where(*f).c_str(), mask));
  if (mask & ~exist)
    fail(HOST_SIMT_ERR_WARP_USAGE,
         fmt("%s at %s: %s passes mask 0x%08x naming lanes %s, which do not exist "
             "(blockDim.x = %u; warp %u has lanes %s): name only the lanes that take part",
             op_name(op), site(loc).c_str(), where(*f).c_str(), mask,
             lane_list(mask & ~exist).c_str(), blockDim.x, warp, lane_list(exist).c_str()));
  if (width < 1 || width > 32 || (width & (width - 1)))
    fail(HOST_SIMT_ERR_WARP_USAGE, fmt("%s at %s: width %d is not a power of two in 1..=32",
                                       op_name(op), site(loc).c_str(), width));
  f->st = St::Warp;
  f->op = op;
  f->mask = mask;
  f->value = value;
  f->b = b;
  f->width = width;
  f->loc = loc;
  L.events++;
  ctx_switch(f->ctx, g_sched);
  return f->result;
}

unsigned active_mask() {
  Fiber* f = current("__activemask");
  const unsigned base = f->tid / 32 * 32;
  unsigned m = 0;
  for (unsigned l = 0; l < 32 && base + l < L.nthreads; l++)
    if (L.fibers[base + l].st != St::Done) m |= 1u << l;
  return m;
}

void yield_now() {
  Fiber* f = current("__nanosleep");
  ctx_switch(f->ctx, g_sched);
}

void trap(const char* what, Loc loc) {
  Fiber* f = current(what);
  fail(HOST_SIMT_ERR_TRAP, fmt("%s at %s in %s", what, site(loc).c_str(), where(*f).c_str()));
}

void assert_fail(const char* expr, const char* file, unsigned line, const char* fn) {
  Fiber* f = current("assert");
  fail(HOST_SIMT_ERR_TRAP, fmt("assertion `%s` failed at %s:%u in %s, %s", expr, file, line, fn,
                               where(*f).c_str()));
}

SharedReg::SharedReg(void* p, size_t bytes) noexcept {
  shared_registry().emplace_back(p, bytes);
  std::memset(p, 0xff, bytes);
}

int run_launch(const HostLaunch* cfg, const char* name, void (*body)(void*), void* ctx) noexcept {
  std::lock_guard<std::mutex> lock(g_mutex);
  t_last_error.clear();
  std::string bad = validate(cfg);
  if (bad.empty() && !g_stacks.ensure(cfg->block_x)) bad = "cannot map fiber stacks";
  if (!bad.empty()) {
    t_last_error = fmt("kernel '%s': invalid launch: %s", name, bad.c_str());
    return HOST_SIMT_ERR_LAUNCH;
  }
  install_fault_handlers();
  ensure_altstack();

  L.name = name;
  L.body = body;
  L.ctx = ctx;
  L.nthreads = cfg->block_x;
  L.nwarps = (cfg->block_x + 31) / 32;
  L.nblocks = static_cast<unsigned long long>(cfg->grid_x) * cfg->grid_y;
  L.schedule = cfg->schedule;
  L.rng = cfg->schedule_seed;
  L.dynamic_smem = cfg->dynamic_smem;
  L.failed = false;
  L.code = 0;
  L.msg.clear();
  L.fibers.resize(L.nthreads);
  L.order.resize(L.nthreads);
  for (unsigned i = 0; i < L.nthreads; i++)
    L.order[i] = L.schedule == 1 ? L.nthreads - 1 - i : i;
  L.block_order.clear();
  if (L.schedule == 2) {
    L.block_order.resize(L.nblocks);
    for (unsigned long long i = 0; i < L.nblocks; i++) L.block_order[i] = i;
    shuffle(L.block_order);
  }
  // Whole arena once per launch (reads past dynamic_smem see poison too), the used part per block.
  std::memset(host_simt_dynamic_smem, 0xff, kDynamicSmemBytes);
  gridDim = dim3(cfg->grid_x, cfg->grid_y, 1);
  blockDim = dim3(cfg->block_x, 1, 1);
  threadIdx = uint3{0, 0, 0};

  g_launch_thread = pthread_self();
  g_fault_sig = 0;
  if (sigsetjmp(g_jmp, 1) == 0) {
    g_jmp_armed = 1;
    run_grid();
  } else {
    // A kernel thread faulted; its fiber (and the block) is abandoned.
    const Fiber* f = g_cur;
    const void* addr = g_fault_addr;
    const std::string who = f ? where(*f) : std::string("a kernel thread");
    if (g_stacks.in_guard(addr))
      set_error(HOST_SIMT_ERR_MEMORY,
                fmt("fiber stack overflow in %s: more than %zu KiB of stack (large local "
                    "arrays or deep recursion); fault address %p",
                    who.c_str(), kStackBytes / 1024, addr));
    else
      set_error(HOST_SIMT_ERR_MEMORY,
                fmt("invalid memory access (%s) at address %p in %s",
                    g_fault_sig == SIGBUS ? "SIGBUS" : "SIGSEGV", addr, who.c_str()));
  }
  g_jmp_armed = 0;
  g_in_fiber = 0;
  g_cur = nullptr;
  if (L.failed) {
    t_last_error = fmt("kernel '%s': ", name) + L.msg;
    return L.code;
  }
  return HOST_SIMT_OK;
}

}  // namespace host_simt

extern "C" const char* host_simt_last_error(void) {
  return host_simt::t_last_error.c_str();
}
