/**
 * The C functions systing calls, with their prototypes. One table per
 * library; nothing outside src/ffi/ sees a raw pointer from these.
 */

export const libbpfSymbols = {
  // struct bpf_object *bpf_object__open_mem(const void *obj_buf, size_t obj_buf_sz,
  //                                         const struct bpf_object_open_opts *opts);
  bpf_object__open_mem: { parameters: ["buffer", "usize", "buffer"], result: "pointer" },
  // int bpf_object__load(struct bpf_object *obj);
  bpf_object__load: { parameters: ["pointer"], result: "i32" },
  // void bpf_object__close(struct bpf_object *obj);
  bpf_object__close: { parameters: ["pointer"], result: "void" },
  // struct bpf_map *bpf_object__find_map_by_name(const struct bpf_object *obj, const char *name);
  bpf_object__find_map_by_name: { parameters: ["pointer", "buffer"], result: "pointer" },
  // struct bpf_program *bpf_object__next_program(const struct bpf_object *obj,
  //                                              struct bpf_program *prog);
  bpf_object__next_program: { parameters: ["pointer", "pointer"], result: "pointer" },
  // const char *bpf_program__name(const struct bpf_program *prog);
  bpf_program__name: { parameters: ["pointer"], result: "pointer" },
  // struct bpf_map *bpf_object__next_map(const struct bpf_object *obj, const struct bpf_map *map);
  bpf_object__next_map: { parameters: ["pointer", "pointer"], result: "pointer" },
  // const char *bpf_map__name(const struct bpf_map *map);
  bpf_map__name: { parameters: ["pointer"], result: "pointer" },
  // int bpf_map__set_autocreate(struct bpf_map *map, bool autocreate);
  bpf_map__set_autocreate: { parameters: ["pointer", "bool"], result: "i32" },
  // int bpf_program__fd(const struct bpf_program *prog);
  bpf_program__fd: { parameters: ["pointer"], result: "i32" },
  // int bpf_program__set_autoload(struct bpf_program *prog, bool autoload);
  bpf_program__set_autoload: { parameters: ["pointer", "bool"], result: "i32" },
  // struct bpf_link *bpf_program__attach(const struct bpf_program *prog);
  bpf_program__attach: { parameters: ["pointer"], result: "pointer" },
  // struct bpf_link *bpf_program__attach_perf_event(const struct bpf_program *prog, int pfd);
  bpf_program__attach_perf_event: { parameters: ["pointer", "i32"], result: "pointer" },
  // struct bpf_link *bpf_program__attach_iter(const struct bpf_program *prog,
  //                                           const struct bpf_iter_attach_opts *opts);
  bpf_program__attach_iter: { parameters: ["pointer", "pointer"], result: "pointer" },
  // int bpf_link__fd(const struct bpf_link *link);
  bpf_link__fd: { parameters: ["pointer"], result: "i32" },
  // int bpf_iter_create(int link_fd);
  bpf_iter_create: { parameters: ["i32"], result: "i32" },
  // int bpf_prog_test_run_opts(int prog_fd, struct bpf_test_run_opts *opts);
  bpf_prog_test_run_opts: { parameters: ["i32", "buffer"], result: "i32" },
  // struct bpf_link *bpf_program__attach_uprobe_opts(const struct bpf_program *prog, pid_t pid,
  //     const char *binary_path, size_t func_offset, const struct bpf_uprobe_opts *opts);
  bpf_program__attach_uprobe_opts: {
    parameters: ["pointer", "i32", "buffer", "usize", "buffer"],
    result: "pointer",
  },
  // struct bpf_link *bpf_program__attach_usdt(const struct bpf_program *prog, pid_t pid,
  //     const char *binary_path, const char *usdt_provider, const char *usdt_name,
  //     const struct bpf_usdt_opts *opts);
  bpf_program__attach_usdt: {
    parameters: ["pointer", "i32", "buffer", "buffer", "buffer", "buffer"],
    result: "pointer",
  },
  // struct bpf_link *bpf_program__attach_tracepoint_opts(const struct bpf_program *prog,
  //     const char *tp_category, const char *tp_name, const struct bpf_tracepoint_opts *opts);
  bpf_program__attach_tracepoint_opts: {
    parameters: ["pointer", "buffer", "buffer", "buffer"],
    result: "pointer",
  },
  // int bpf_program__set_attach_target(struct bpf_program *prog, int attach_prog_fd,
  //     const char *attach_func_name);
  bpf_program__set_attach_target: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
  // int bpf_link__destroy(struct bpf_link *link);
  bpf_link__destroy: { parameters: ["pointer"], result: "i32" },
  // int bpf_map__set_max_entries(struct bpf_map *map, __u32 max_entries);
  bpf_map__set_max_entries: { parameters: ["pointer", "u32"], result: "i32" },
  // int bpf_map__set_inner_map_fd(struct bpf_map *map, int fd);
  bpf_map__set_inner_map_fd: { parameters: ["pointer", "i32"], result: "i32" },
  // __u32 bpf_map__value_size(const struct bpf_map *map);
  bpf_map__value_size: { parameters: ["pointer"], result: "u32" },
  // int bpf_map__fd(const struct bpf_map *map);
  bpf_map__fd: { parameters: ["pointer"], result: "i32" },
  // void *bpf_map__initial_value(struct bpf_map *map, size_t *psize);
  bpf_map__initial_value: { parameters: ["pointer", "buffer"], result: "pointer" },
  // int bpf_map_create(enum bpf_map_type map_type, const char *map_name, __u32 key_size,
  //                    __u32 value_size, __u32 max_entries, const struct bpf_map_create_opts *opts);
  bpf_map_create: {
    parameters: ["u32", "buffer", "u32", "u32", "u32", "pointer"],
    result: "i32",
  },
  // int bpf_map_update_elem(int fd, const void *key, const void *value, __u64 flags);
  bpf_map_update_elem: { parameters: ["i32", "buffer", "buffer", "u64"], result: "i32" },
  // int bpf_map_get_next_key(int fd, const void *key, void *next_key);
  bpf_map_get_next_key: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  // int bpf_map_delete_elem(int fd, const void *key);
  bpf_map_delete_elem: { parameters: ["i32", "buffer"], result: "i32" },
  // int bpf_map_lookup_elem(int fd, const void *key, void *value);
  bpf_map_lookup_elem: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  // struct btf *btf__load_vmlinux_btf(void);
  btf__load_vmlinux_btf: { parameters: [], result: "pointer" },
  // __s32 btf__find_by_name_kind(const struct btf *btf, const char *type_name, __u32 kind);
  btf__find_by_name_kind: { parameters: ["pointer", "buffer", "u32"], result: "i32" },
  // __u32 btf__type_cnt(const struct btf *btf);
  btf__type_cnt: { parameters: ["pointer"], result: "u32" },
  // const struct btf_type *btf__type_by_id(const struct btf *btf, __u32 id);
  btf__type_by_id: { parameters: ["pointer", "u32"], result: "pointer" },
  // const char *btf__name_by_offset(const struct btf *btf, __u32 offset);
  btf__name_by_offset: { parameters: ["pointer", "u32"], result: "pointer" },
  // void btf__free(struct btf *btf);
  btf__free: { parameters: ["pointer"], result: "void" },
  // int libbpf_num_possible_cpus(void);
  libbpf_num_possible_cpus: { parameters: [], result: "i32" },
  // int libbpf_strerror(int err, char *buf, size_t size);
  libbpf_strerror: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  // libbpf_print_fn_t libbpf_set_print(libbpf_print_fn_t fn);
  libbpf_set_print: { parameters: ["function"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

export const libcSymbols = {
  // void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  // int munmap(void *addr, size_t length);
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  // int close(int fd);
  close: { parameters: ["i32"], result: "i32" },
  // int epoll_create1(int flags);
  epoll_create1: { parameters: ["i32"], result: "i32" },
  // int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  // int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout);
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  // int eventfd(unsigned int initval, int flags);
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  // int clock_gettime(clockid_t clockid, struct timespec *tp);
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  // int *__errno_location(void);
  __errno_location: { parameters: [], result: "pointer" },
  // int vsnprintf(char *str, size_t size, const char *format, va_list ap);
  vsnprintf: { parameters: ["buffer", "usize", "pointer", "pointer"], result: "i32" },
  // int mount(const char *source, const char *target, const char *fstype,
  //           unsigned long mountflags, const void *data);
  mount: { parameters: ["buffer", "buffer", "buffer", "u64", "pointer"], result: "i32" },
  // int getpagesize(void);
  getpagesize: { parameters: [], result: "i32" },
  // int prctl(int option, unsigned long arg2, ...); bound as PR_SET_NAME (a name buffer)
  prctl: { parameters: ["i32", "buffer"], result: "i32" },
  // int malloc_trim(size_t pad);
  malloc_trim: { parameters: ["usize"], result: "i32" },
  // char *strerror(int errnum);
  strerror: { parameters: ["i32"], result: "pointer" },
  // long syscall(long number, ...); bound only as perf_event_open(2), which has no libc
  // wrapper: syscall(SYS_perf_event_open, struct perf_event_attr *attr, pid_t pid, int cpu,
  //                  int group_fd, unsigned long flags);
  perf_event_open: {
    name: "syscall",
    parameters: ["i64", "buffer", "i32", "i32", "i32", "u64"],
    result: "i64",
  },
  // int ioctl(int fd, unsigned long request, ...); bound with one integer argument.
  ioctl: { parameters: ["i32", "u64", "u64"], result: "i32" },
  // int open(const char *pathname, int flags, ...); bound with the mode argument.
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  // long syscall(long number, ...); bound as openat2(2), which glibc 2.36 does not wrap:
  // syscall(SYS_openat2, int dirfd, const char *pathname, struct open_how *how, size_t size).
  openat2: {
    name: "syscall",
    parameters: ["i64", "i32", "buffer", "buffer", "usize"],
    result: "i64",
  },
  // long syscall(long number, ...); bound as pidfd_open(2), which glibc 2.34 does not wrap:
  // syscall(SYS_pidfd_open, pid_t pid, unsigned int flags).
  pidfd_open: { name: "syscall", parameters: ["i64", "i32", "u32"], result: "i64" },
  // int statx(int dirfd, const char *pathname, int flags, unsigned int mask,
  //           struct statx *statxbuf);
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
  // int fstatfs(int fd, struct statfs *buf);
  fstatfs: { parameters: ["i32", "buffer"], result: "i32" },
  // int memfd_create(const char *name, unsigned int flags);
  memfd_create: { parameters: ["buffer", "u32"], result: "i32" },
  // ssize_t write(int fd, const void *buf, size_t count);
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // int fcntl(int fd, int cmd, ...); bound with one integer argument.
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  // ssize_t read(int fd, void *buf, size_t count);
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // ssize_t pread(int fd, void *buf, size_t count, off_t offset);
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  // int sigaction(int signum, const struct sigaction *act, struct sigaction *oldact);
  sigaction: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;
