// Empty file
