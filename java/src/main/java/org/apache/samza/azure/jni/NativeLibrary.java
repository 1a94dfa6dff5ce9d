package org.apache.samza.azure.jni;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.nio.file.attribute.UserPrincipal;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Locale;
import java.util.Set;
import org.apache.samza.azure.errors.NativeLibraryException;

/**
 * Finds and loads the native core, once per JVM.
 *
 * <p>Order: an explicit file ({@value #PROP_PATH}); then {@code System.loadLibrary}, so an operator
 * can provide the library through {@code java.library.path}; then the copy inside this jar under
 * {@code native/<os>-<arch>[-musl]/}, extracted to {@value #PROP_DIR} (default {@code
 * <java.io.tmpdir>/samza-azure-native-<user.name>}). The directory must be this user's and writable
 * by no one else (it is created so), extraction is content-addressed and atomic, and the file's
 * hash is checked before it is loaded, so several JVMs starting at once are safe and no other user
 * can swap the library. If the default directory is refused or the extracted file cannot be mapped
 * (a {@code noexec} temp dir), a directory under {@code user.home} is tried before giving up. Every
 * failure names the path, OS, arch and libc.
 */
public final class NativeLibrary {
  public static final String NAME = "samza_azure_coordinator";

  /** Absolute path of a library file to load instead of searching. */
  public static final String PROP_PATH = "samza.azure.native.path";

  /** Directory to extract the bundled library into. */
  public static final String PROP_DIR = "samza.azure.native.dir";

  /** Set to "false" to skip {@code System.loadLibrary} and always use the bundled copy. */
  public static final String PROP_USE_LIBRARY_PATH = "samza.azure.native.useLibraryPath";

  private static volatile String loadedFrom;

  /** The library being loaded, for the error if it turns out to be built for another jar. */
  private static String attempt;

  private NativeLibrary() {}

  /** Loads the library if not yet loaded; returns where it was loaded from. */
  public static synchronized String load() {
    if (loadedFrom != null) {
      return loadedFrom;
    }
    try {
      return loadedFrom = find();
    } catch (NoSuchMethodError mismatch) {
      // From the library's JNI_OnLoad (src/jni/registry.rs): it loaded, but implements methods
      // that Native declares differently or not at all. No other copy is tried: one an operator
      // pointed at must not be replaced silently, and the jar's own copy always matches.
      throw failure(attempt + " was built for another version of this jar", mismatch);
    }
  }

  private static String find() {
    String explicit = System.getProperty(PROP_PATH);
    if (explicit != null && !explicit.isEmpty()) {
      try {
        attempt = explicit;
        System.load(new File(explicit).getAbsolutePath());
      } catch (UnsatisfiedLinkError e) {
        throw failure("cannot load " + PROP_PATH + "=" + explicit, e);
      }
      return explicit;
    }
    if (!"false".equalsIgnoreCase(System.getProperty(PROP_USE_LIBRARY_PATH))) {
      try {
        attempt = "java.library.path";
        System.loadLibrary(NAME);
        return "java.library.path";
      } catch (UnsatisfiedLinkError notOnPath) {
        // Expected in the common case: fall through to the copy inside the jar.
      }
    }
    return loadBundled();
  }

  /** Where the library came from, or null if not loaded. */
  public static String loadedFrom() {
    return loadedFrom;
  }

  /** {@code linux-x86_64}, {@code linux-x86_64-musl}, {@code darwin-aarch64}, ... */
  public static String platform() {
    String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
    String osPart;
    if (os.contains("linux")) {
      osPart = "linux";
    } else if (os.contains("mac") || os.contains("darwin")) {
      osPart = "darwin";
    } else if (os.contains("windows")) {
      osPart = "windows";
    } else {
      osPart = os.replaceAll("[^a-z0-9]", "");
    }
    String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
    if (arch.equals("amd64") || arch.equals("x86_64")) {
      arch = "x86_64";
    } else if (arch.equals("aarch64") || arch.equals("arm64")) {
      arch = "aarch64";
    }
    return osPart + "-" + arch + ("musl".equals(libc()) ? "-musl" : "");
  }

  /** "glibc", "musl", or "n/a" off Linux. */
  public static String libc() {
    if (!System.getProperty("os.name", "").toLowerCase(Locale.ROOT).contains("linux")) {
      return "n/a";
    }
    File[] lib = new File("/lib").listFiles((dir, name) -> name.startsWith("ld-musl-"));
    return lib != null && lib.length > 0 ? "musl" : "glibc";
  }

  static String resourcePath() {
    return "/native/" + platform() + "/" + System.mapLibraryName(NAME);
  }

  private static String loadBundled() {
    String resource = resourcePath();
    String configured = System.getProperty(PROP_DIR);
    // Per user: on a shared temp dir, a directory someone else created first is theirs to fill.
    Path dir =
        configured != null && !configured.isEmpty()
            ? Paths.get(configured)
            : Paths.get(
                System.getProperty("java.io.tmpdir"),
                "samza-azure-native-"
                    + System.getProperty("user.name", "user").replaceAll("[^A-Za-z0-9._-]", "_"));
    try {
      return loadFrom(resource, dir);
    } catch (NativeLibraryException first) {
      if (configured != null && !configured.isEmpty()) {
        throw first;
      }
      // A noexec temp dir is common on hardened hosts, and the default directory may be taken by
      // another user: try the user's home before failing.
      Path fallback = Paths.get(System.getProperty("user.home"), ".samza-azure", "native");
      try {
        return loadFrom(resource, fallback);
      } catch (NativeLibraryException second) {
        first.addSuppressed(second);
        throw first;
      }
    }
  }

  private static String loadFrom(String resource, Path dir) {
    Path target;
    byte[] digest;
    try (InputStream in = open(resource)) {
      digest = sha256(in);
      target = extract(resource, dir, digest);
      // Only this user can write the directory, so what is checked here is what gets loaded.
      if (!MessageDigest.isEqual(digest, sha256File(target))) {
        throw new IOException(target + " does not hold the library from the jar");
      }
    } catch (IOException e) {
      throw failure("cannot extract " + resource + " into " + dir + " (set -D" + PROP_DIR + ")", e);
    }
    try {
      attempt = target.toString();
      System.load(target.toAbsolutePath().toString());
    } catch (UnsatisfiedLinkError e) {
      throw failure(
          "cannot load "
              + target
              + " (if the directory is mounted noexec, set -D"
              + PROP_DIR
              + " to one that allows execution)",
          e);
    }
    return target.toString();
  }

  /**
   * Copies the resource to {@code dir/<sha256-prefix>/<libname>} unless already there. Both
   * directories must be this user's and writable by nobody else (created so if missing); the file
   * is written under a temporary name and renamed into place atomically.
   */
  private static Path extract(String resource, Path dir, byte[] digest) throws IOException {
    String hex = toHex(digest).substring(0, 16);
    ownDirectory(dir);
    Path versionDir = ownDirectory(dir.resolve(hex));
    Path target = versionDir.resolve(System.mapLibraryName(NAME));
    if (Files.isRegularFile(target, LinkOption.NOFOLLOW_LINKS)
        && MessageDigest.isEqual(digest, sha256File(target))) {
      return target;
    }
    Path tmp = Files.createTempFile(versionDir, "lib", ".tmp");
    try {
      try (InputStream in = open(resource);
          OutputStream out = Files.newOutputStream(tmp)) {
        byte[] buf = new byte[1 << 16];
        int n;
        while ((n = in.read(buf)) > 0) {
          out.write(buf, 0, n);
        }
      }
      try {
        // Atomic rename: a concurrent JVM sees either no file or a complete one.
        Files.move(
            tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      } catch (AtomicMoveNotSupportedException e) {
        Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
      }
    } finally {
      Files.deleteIfExists(tmp);
    }
    return target;
  }

  /**
   * {@code dir}, created owner-only if missing; refused unless it is a real directory (not a link)
   * owned by this user and writable by no one else, since whoever can write it can replace the
   * library between its check and its load.
   */
  static Path ownDirectory(Path dir) throws IOException {
    boolean posix = FileSystems.getDefault().supportedFileAttributeViews().contains("posix");
    if (!Files.exists(dir, LinkOption.NOFOLLOW_LINKS)) {
      Files.createDirectories(dir.toAbsolutePath().getParent());
      try {
        if (posix) {
          Files.createDirectory(
              dir,
              PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        } else {
          Files.createDirectory(dir);
        }
      } catch (FileAlreadyExistsException raced) {
        // Another JVM (or user) made it meanwhile: checked below like any existing one.
      }
    }
    if (!Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS)) {
      throw new IOException(dir + " is not a directory (or is a symbolic link)");
    }
    UserPrincipal owner = Files.getOwner(dir, LinkOption.NOFOLLOW_LINKS);
    UserPrincipal me = currentUser();
    if (me != null && !owner.equals(me)) {
      throw new IOException(dir + " is owned by " + owner.getName() + ", not by " + me.getName());
    }
    if (posix) {
      Set<PosixFilePermission> perms =
          Files.getPosixFilePermissions(dir, LinkOption.NOFOLLOW_LINKS);
      if (perms.contains(PosixFilePermission.GROUP_WRITE)
          || perms.contains(PosixFilePermission.OTHERS_WRITE)) {
        throw new IOException(
            dir + " is writable by others (" + PosixFilePermissions.toString(perms) + ")");
      }
    }
    return dir;
  }

  /** The owner files created by this JVM get; null if it cannot be told. */
  private static UserPrincipal currentUser() {
    Path probe = null;
    try {
      probe = Files.createTempFile("samza-azure-owner", ".tmp");
      return Files.getOwner(probe);
    } catch (IOException | UnsupportedOperationException e) {
      return null;
    } finally {
      if (probe != null) {
        try {
          Files.deleteIfExists(probe);
        } catch (IOException ignored) {
          // a stray empty temp file
        }
      }
    }
  }

  private static InputStream open(String resource) throws IOException {
    InputStream in = NativeLibrary.class.getResourceAsStream(resource);
    if (in == null) {
      throw new IOException("the jar has no native library for this platform at " + resource);
    }
    return in;
  }

  private static byte[] sha256(InputStream in) throws IOException {
    try {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      try (DigestInputStream din = new DigestInputStream(in, md)) {
        byte[] buf = new byte[1 << 16];
        while (din.read(buf) > 0) {
          // digesting
        }
      }
      return md.digest();
    } catch (NoSuchAlgorithmException e) {
      throw new IOException("SHA-256 unavailable", e);
    }
  }

  private static byte[] sha256File(Path file) throws IOException {
    try (InputStream in = Files.newInputStream(file)) {
      return sha256(in);
    }
  }

  private static String toHex(byte[] bytes) {
    StringBuilder sb = new StringBuilder(bytes.length * 2);
    for (byte b : bytes) {
      sb.append(String.format("%02x", b));
    }
    return sb.toString();
  }

  private static NativeLibraryException failure(String what, Throwable cause) {
    return new NativeLibraryException(
        "samza-azure native library: "
            + what
            + " [os.name="
            + System.getProperty("os.name")
            + ", os.arch="
            + System.getProperty("os.arch")
            + ", libc="
            + libc()
            + ", platform="
            + platform()
            + "]: "
            + cause.getMessage(),
        cause);
  }
}
