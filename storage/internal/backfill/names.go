package backfill

// programSpec describes one program of the generated host.
type programSpec struct {
	comm, exe, unit, vocab string
	container, cxx, ssl    bool
	userOnly               float64
}

// programSpecs: long-lived programs first, then transientSpecs (short-lived
// processes), which must stay last.
var programSpecs = append([]programSpec{
	{"postgres", "/usr/lib/postgresql/16/bin/postgres", "postgresql@16-main.service", "pg", false, false, true, 0.7},
	{"python3", "/usr/bin/python3.12", "api.service", "py", true, false, true, 0.8},
	{"java", "/usr/lib/jvm/java-21-openjdk-amd64/bin/java", "kafka.service", "jvm", true, true, false, 0.85},
	{"nginx", "/usr/sbin/nginx", "nginx.service", "ngx", false, false, true, 0.4},
	{"node", "/usr/bin/node", "frontend.service", "v8", true, true, true, 0.75},
	{"redis-server", "/usr/bin/redis-server", "redis-server.service", "redis", false, false, false, 0.5},
	{"envoy", "/usr/local/bin/envoy", "envoy.service", "envoy", true, true, true, 0.5},
	{"containerd", "/usr/bin/containerd", "containerd.service", "ctrd", false, false, false, 0.6},
	{"kubelet", "/usr/bin/kubelet", "kubelet.service", "kube", false, false, true, 0.6},
	{"dockerd", "/usr/bin/dockerd", "docker.service", "moby", false, false, false, 0.6},
	{"etcd", "/usr/local/bin/etcd", "etcd.service", "raft", true, false, true, 0.5},
	{"prometheus", "/bin/prometheus", "prometheus.service", "tsdb", true, false, false, 0.7},
	{"mysqld", "/usr/sbin/mysqld", "mysql.service", "innodb", false, true, true, 0.6},
	{"rsyslogd", "/usr/sbin/rsyslogd", "rsyslog.service", "rsys", false, false, false, 0.3},
	{"sshd", "/usr/sbin/sshd", "ssh.service", "ssh", false, false, true, 0.3},
	{"systemd-journal", "/usr/lib/systemd/systemd-journald", "systemd-journald.service", "jrnl", false, false, false, 0.3},
	{"chronyd", "/usr/sbin/chronyd", "chrony.service", "ntp", false, false, false, 0.3},
	{"memcached", "/usr/bin/memcached", "memcached.service", "mc", true, false, false, 0.4},
	{"haproxy", "/usr/sbin/haproxy", "haproxy.service", "hap", false, false, true, 0.4},
	{"ruby", "/usr/bin/ruby3.2", "sidekiq.service", "rb", true, false, true, 0.8},
	{"celery", "/usr/bin/python3.12", "celery.service", "py", true, false, true, 0.8},
	{"grafana", "/usr/share/grafana/bin/grafana", "grafana-server.service", "graf", true, false, true, 0.7},
	{"fluent-bit", "/opt/fluent-bit/bin/fluent-bit", "fluent-bit.service", "flb", true, false, true, 0.4},
	{"clickhouse-serv", "/usr/bin/clickhouse", "clickhouse-server.service", "ch", false, true, true, 0.7},
}, transientSpecs...)

var transientSpecs = []programSpec{
	{"sh", "/usr/bin/dash", "cron.service", "sh", false, false, false, 0.3},
	{"git", "/usr/bin/git", "ci-runner.service", "git", false, false, true, 0.4},
	{"cc1", "/usr/lib/gcc/x86_64-linux-gnu/13/cc1", "ci-runner.service", "gcc", false, false, false, 0.6},
	{"curl", "/usr/bin/curl", "cron.service", "curl", false, false, true, 0.3},
}

var vocabs = map[string][]string{
	"pg":     {"heap", "btree", "exec", "portal", "xlog", "buf", "lock", "tuple", "plan", "index", "seqscan", "hashjoin"},
	"py":     {"eval", "frame", "dict", "object", "unicode", "list", "gc", "import", "call", "long", "type"},
	"jvm":    {"interp", "c2", "gc", "g1", "klass", "oop", "thread", "safepoint", "jni", "heap"},
	"ngx":    {"http", "event", "epoll", "upstream", "ssl", "proxy", "buf", "conf", "log"},
	"v8":     {"isolate", "heap", "compiler", "turbofan", "ignition", "builtins", "gc", "uv", "stream"},
	"redis":  {"dict", "aof", "rdb", "networking", "server", "t_string", "t_hash", "sds", "ae"},
	"envoy":  {"http", "router", "filter", "cluster", "listener", "dispatcher", "buffer", "stats"},
	"ctrd":   {"runtime", "shim", "snapshot", "content", "grpc", "task", "events"},
	"kube":   {"pleg", "pod", "cadvisor", "volume", "status", "eviction", "cri", "sync"},
	"moby":   {"daemon", "container", "network", "image", "layer", "api", "exec"},
	"raft":   {"raft", "wal", "snap", "mvcc", "lease", "grpc", "backend", "bbolt"},
	"tsdb":   {"head", "chunk", "compact", "scrape", "wal", "index", "query", "series"},
	"innodb": {"buf", "btr", "row", "trx", "lock", "log", "fil", "page", "que"},
	"rsys":   {"queue", "action", "msg", "parse", "omfile", "imuxsock"},
	"ssh":    {"channel", "packet", "cipher", "kex", "auth", "session"},
	"jrnl":   {"journal", "server", "stream", "mmap", "compress"},
	"ntp":    {"sources", "sched", "ntp_core", "refclock"},
	"mc":     {"slab", "items", "assoc", "thread", "proto"},
	"hap":    {"stream", "http_ana", "backend", "fd", "task", "ssl_sock"},
	"rb":     {"vm", "gc", "string", "hash", "array", "iseq", "yjit"},
	"graf":   {"sql", "http", "alert", "plugin", "render", "cache"},
	"flb":    {"input", "output", "filter", "engine", "pack", "tail"},
	"ch":     {"merge", "part", "aggregate", "column", "pipeline", "compress", "mark"},
	"sh":     {"eval", "parse", "exec", "var", "redir"},
	"git":    {"object", "pack", "diff", "index", "tree", "refs"},
	"gcc":    {"tree", "rtl", "gimple", "cfg", "ssa", "expr", "decl"},
	"curl":   {"transfer", "multi", "connect", "http", "ssl", "url"},
}

var verbs = []string{"get", "put", "scan", "read", "write", "flush", "alloc", "free", "lookup", "insert",
	"update", "delete", "hash", "compare", "encode", "decode", "process", "handle", "dispatch", "run", "poll",
	"wait", "copy", "parse", "emit", "visit", "merge", "sort", "init", "finish"}

var nouns = []string{"page", "entry", "node", "buffer", "request", "batch", "record", "key", "value", "slot",
	"chunk", "block", "row", "item", "event", "state", "context", "frame", "header", "table", "segment", "queue"}

var libcNames = []string{"__libc_start_call_main", "__libc_start_main_impl", "__memmove_avx_unaligned_erms",
	"__memset_avx2_unaligned_erms", "__strlen_avx2", "__memcmp_avx2_movbe", "malloc", "_int_malloc", "free",
	"_int_free", "cfree", "__GI___libc_read", "__GI___libc_write", "epoll_wait", "__poll", "pthread_mutex_lock",
	"pthread_mutex_unlock", "pthread_cond_wait", "__futex_abstimed_wait_common", "clock_gettime", "__select",
	"__recv", "__send", "__libc_recvmsg", "__libc_sendmsg", "fdatasync", "__lseek", "mmap64", "munmap", "qsort_r",
	"msort_with_tmp", "__strchr_avx2", "__strcmp_avx2", "realloc", "calloc", "__vfprintf_internal"}

var cxxNames = []string{"operator new(unsigned long)", "operator delete(void*)",
	"std::_Rb_tree_increment(std::_Rb_tree_node_base*)", "std::__detail::_Prime_rehash_policy::_M_need_rehash(unsigned long, unsigned long, unsigned long) const",
	"std::basic_string<char>::_M_mutate(unsigned long, unsigned long, char const*, unsigned long)",
	"std::basic_string<char>::_M_append(char const*, unsigned long)", "__cxa_allocate_exception",
	"std::condition_variable::wait(std::unique_lock<std::mutex>&)", "std::thread::_State_impl::_M_run()"}

var sslNames = []string{"SSL_read", "SSL_write", "ssl3_read_bytes", "ssl3_write_bytes", "tls13_enc",
	"EVP_DecryptUpdate", "EVP_EncryptUpdate", "aesni_gcm_decrypt", "aesni_gcm_encrypt", "gcm_ghash_avx",
	"SHA256_Update", "sha256_block_data_order_avx2", "BN_mod_exp_mont_consttime", "ecp_nistz256_point_double"}

// kernelPaths are kernel call chains, root first.
var kernelPaths = [][]string{
	{"entry_SYSCALL_64_after_hwframe", "do_syscall_64", "__x64_sys_read", "ksys_read", "vfs_read", "sock_read_iter", "sock_recvmsg", "tcp_recvmsg", "tcp_recvmsg_locked", "skb_copy_datagram_iter", "__skb_datagram_iter", "_copy_to_iter"},
	{"entry_SYSCALL_64_after_hwframe", "do_syscall_64", "__x64_sys_write", "ksys_write", "vfs_write", "sock_write_iter", "sock_sendmsg", "tcp_sendmsg", "tcp_sendmsg_locked", "tcp_push", "__tcp_push_pending_frames", "tcp_write_xmit", "__tcp_transmit_skb", "ip_queue_xmit", "__ip_queue_xmit", "ip_finish_output2", "__dev_queue_xmit"},
	{"entry_SYSCALL_64_after_hwframe", "do_syscall_64", "__x64_sys_epoll_wait", "do_epoll_wait", "ep_poll", "schedule_hrtimeout_range", "schedule", "__schedule", "finish_task_switch.isra.0"},
	{"entry_SYSCALL_64_after_hwframe", "do_syscall_64", "__x64_sys_futex", "do_futex", "futex_wait", "futex_wait_queue", "schedule", "__schedule"},
	{"entry_SYSCALL_64_after_hwframe", "do_syscall_64", "__x64_sys_openat", "do_sys_openat2", "do_filp_open", "path_openat", "link_path_walk.part.0", "walk_component", "lookup_fast", "__d_lookup_rcu"},
	{"entry_SYSCALL_64_after_hwframe", "do_syscall_64", "__x64_sys_fdatasync", "do_fsync", "ext4_sync_file", "file_write_and_wait_range", "__filemap_fdatawait_range", "folio_wait_bit_common", "io_schedule", "schedule"},
	{"entry_SYSCALL_64_after_hwframe", "do_syscall_64", "__x64_sys_pwrite64", "vfs_write", "ext4_buffered_write_iter", "generic_perform_write", "ext4_da_write_begin", "__filemap_get_folio", "filemap_add_folio", "__mem_cgroup_charge"},
	{"entry_SYSCALL_64_after_hwframe", "do_syscall_64", "__x64_sys_mmap", "ksys_mmap_pgoff", "vm_mmap_pgoff", "do_mmap", "mmap_region", "vma_merge"},
	{"asm_exc_page_fault", "exc_page_fault", "do_user_addr_fault", "handle_mm_fault", "__handle_mm_fault", "do_anonymous_page", "vma_alloc_folio", "alloc_pages_mpol", "__alloc_pages", "get_page_from_freelist", "clear_page_erms"},
	{"asm_exc_page_fault", "exc_page_fault", "do_user_addr_fault", "handle_mm_fault", "__handle_mm_fault", "do_fault", "filemap_map_pages", "next_uptodate_folio"},
	{"entry_SYSCALL_64_after_hwframe", "do_syscall_64", "__x64_sys_clone3", "kernel_clone", "copy_process", "dup_mm", "dup_mmap", "copy_page_range"},
	{"entry_SYSCALL_64_after_hwframe", "do_syscall_64", "__x64_sys_execve", "do_execveat_common.isra.0", "bprm_execve", "load_elf_binary", "begin_new_exec", "exec_mmap", "mmput", "exit_mmap", "unmap_vmas"},
	{"ret_from_fork_asm", "ret_from_fork", "kthread", "worker_thread", "process_one_work", "wb_workfn", "wb_writeback", "__writeback_inodes_wb", "writeback_sb_inodes", "do_writepages", "ext4_writepages"},
	{"ret_from_fork_asm", "ret_from_fork", "kthread", "smpboot_thread_fn", "run_ksoftirqd", "handle_softirqs", "net_rx_action", "__napi_poll", "virtnet_poll", "napi_gro_receive", "netif_receive_skb_list_internal", "ip_list_rcv", "tcp_v4_rcv"},
}

var irqPath = []string{"asm_sysvec_apic_timer_interrupt", "sysvec_apic_timer_interrupt", "__sysvec_apic_timer_interrupt", "hrtimer_interrupt", "__hrtimer_run_queues", "tick_nohz_handler", "update_process_times", "sched_tick", "task_tick_fair"}
