package org.apache.samza.azure.errors;

/** The native library could not be found, extracted or loaded. */
public class NativeLibraryException extends AzureCoordinationException {
  private static final long serialVersionUID = 1L;

  public static final String CODE = "NATIVE_LIBRARY";

  public NativeLibraryException(String message, Throwable cause) {
    super(CODE, message, cause);
  }
}
