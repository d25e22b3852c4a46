/* fdio.h — whole-buffer descriptor I/O: write all, writev all, sendfile all, read full. */
#ifndef CROW_FDIO_H
#define CROW_FDIO_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Writes all LEN bytes of BUF to FD, retrying EINTR and short writes.  Returns LEN, or -1
 * with errno set (EAGAIN on a non-blocking FD that filled: some bytes may have gone; the
 * count written so far is stored in *DONE when DONE is not NULL). */
ssize_t crow_fd_write_all(int fd, const void *buf, size_t len, size_t *done);

/* Writes every byte of the IOVCNT buffers in IOV with as few writev(2) calls as the kernel
 * allows.  IOV is modified (advanced past what was written).  Returns the total written, or
 * -1 with errno set; *DONE (when not NULL) holds the bytes written before the failure. */
ssize_t crow_fd_writev_all(int fd, struct iovec *iov, int iovcnt, size_t *done);

/* Copies COUNT bytes from IN_FD at *OFFSET to OUT_FD with sendfile(2), advancing *OFFSET.
 * Returns the bytes sent (fewer than COUNT only at end of file), or -1 with errno set. */
ssize_t crow_fd_sendfile_all(int out_fd, int in_fd, off_t *offset, size_t count);

/* Reads until LEN bytes or end of file.  Returns the bytes read (short only at EOF), or -1
 * with errno set. */
ssize_t crow_fd_read_full(int fd, void *buf, size_t len);

#endif
